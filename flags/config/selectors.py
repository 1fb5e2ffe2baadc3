"""Reads of typed config: the current value (from the in-process snapshot), and its versions."""

from __future__ import annotations

import logging
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from flags.config.models import ConfigValue
from flags.config.registry import ConfigSpec, config_spec
from flags.snapshot import snapshot_current

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


def _safe_mode_on(switches: dict[str, bool]) -> bool:
    from flags.names import SAFE_MODE

    return bool(switches.get(SAFE_MODE, False))


@overload
def config_get(name: ConfigSpec[T]) -> T: ...
@overload
def config_get(name: str) -> BaseModel: ...
def config_get(name: str | ConfigSpec[Any]) -> BaseModel:
    """The typed value of a declared config name. While safe mode is on, its safe value (if it
    declares one); before any write, its default. Never raises for a declared name: if the
    store cannot be read the safe value (else the default) is returned, and a stored value
    that no longer fits the schema (the schema changed in code) is logged and the default
    returned."""
    spec = name if isinstance(name, ConfigSpec) else config_spec(name)
    snap = snapshot_current()
    if snap is None:
        return config_safe_value(spec, spec.default)
    raw = snap.config.get(spec.name)
    if raw is None:
        typed: BaseModel = spec.default
    else:
        # Validated once per snapshot: a read after the first costs a dict lookup.
        cached = snap.typed.get(spec.name)
        if cached is not None:
            typed = cached
        else:
            try:
                typed = spec.schema.model_validate(raw)
            except ValidationError:
                logger.exception(
                    "config %s: the stored value no longer fits its schema; answering the default", spec.name
                )
                typed = spec.default
            snap.typed[spec.name] = typed
    if (spec.safe is not None or spec.safe_update is not None) and _safe_mode_on(snap.switches):
        key = f"{spec.name}\x00safe"
        safe = snap.typed.get(key)
        if safe is None:
            safe = snap.typed[key] = config_safe_value(spec, typed)
        return safe
    return typed


def config_safe_value(spec: ConfigSpec[Any], value: BaseModel) -> BaseModel:
    """What safe mode serves while ``value`` is in force: the declared safe value, or the
    value with the declared safe update applied; ``value`` itself if neither is declared."""
    if spec.safe_update is not None:
        return value.model_copy(update=dict(spec.safe_update))
    return spec.safe if spec.safe is not None else value


def config_current(name: str) -> ConfigValue | None:
    """The stored row (version and value) of a name, from the database; None before a write."""
    return ConfigValue.objects.filter(name=name).first()


def config_versions(name: str) -> list[dict[str, Any]]:
    """Every version of a name, newest first (the last 200): version, value, who, when, why."""
    from flags.selectors import history_rows

    return [
        {
            "version": row["values"]["version"],
            "value": row["values"]["value"],
            **{key: row[key] for key in ("changed_at", "changed_by", "reason", "change")},
        }
        for row in history_rows(ConfigValue.history.filter(name=name), ("version", "value"))
    ]
