"""Writes of typed config: every write is validated by the name's schema and is a new
version (a history row with who, when, the value and the reason); a rollback writes an
earlier version's value as the next version."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from pydantic import BaseModel, ValidationError

from flags.config.models import ConfigValue
from flags.config.registry import config_spec
from matchplatform.exceptions import InvalidInput, NotFound


def config_errors(exc: ValidationError) -> dict[str, list[str]]:
    """pydantic's errors as the API's ``fields``: ``{"value.epsilon": ["..."]}``."""
    fields: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        path = ".".join(["value", *(str(part) for part in err["loc"])])
        fields.setdefault(path, []).append(err["msg"])
    return fields


def config_validate(name: str, value: Any) -> BaseModel:
    """The value as its schema reads it, or InvalidInput naming each bad field."""
    try:
        spec = config_spec(name)
    except KeyError:
        raise NotFound(f"No config is named {name!r}.") from None
    try:
        return spec.schema.model_validate(value)
    except ValidationError as exc:
        fields = config_errors(exc)
        raise InvalidInput(f"{name}: " + "; ".join(f"{k}: {v[0]}" for k, v in fields.items()), fields=fields) from None


def config_set(name: str, value: Any, *, reason: str = "", actor: User | AnonymousUser | None = None) -> ConfigValue:
    """Validate and store ``value`` as the next version of ``name``."""
    typed = config_validate(name, value)
    stored = typed.model_dump(mode="json")
    with transaction.atomic():
        # The row exists before it is locked, so two first writes queue on the lock (rather
        # than both inserting and one failing on the name).
        ConfigValue.objects.bulk_create([ConfigValue(name=name, value=stored, version=0)], ignore_conflicts=True)
        row = ConfigValue.objects.select_for_update(no_key=True).get(name=name)
        row.value = stored
        row.version += 1
        row._change_reason = reason or None  # type: ignore[attr-defined]
        if actor is not None and actor.is_authenticated:
            row._history_user = actor  # type: ignore[attr-defined]
        row.save()  # its post_save bumps the snapshot stamp
    return row


def config_rollback(
    name: str, *, version: int, reason: str = "", actor: User | AnonymousUser | None = None
) -> ConfigValue:
    """Restore the value ``name`` had at ``version``, as a new version."""
    earlier = ConfigValue.history.filter(name=name, version=version).exclude(history_type="-").order_by("-history_id")
    row = earlier.first()
    if row is None:
        raise NotFound(f"{name} has no version {version}.")
    why = f"rollback to v{version}" + (f": {reason}" if reason else "")
    return config_set(name, row.value, reason=why[:100], actor=actor)
