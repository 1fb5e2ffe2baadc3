"""Reads of flags: what a caller's client sees."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from waffle.models import Switch

from flags.evaluation import flag_enabled, flag_safe_value, request_unit, user_unit
from flags.models import Flag
from matchplatform.exceptions import NotFound


def flags_for_request(request: HttpRequest) -> dict[str, bool]:
    """Every flag, evaluated from the snapshot for this request's member (or anonymous unit)
    as a worker evaluates it: waffle's member rules, the sticky percentage and safe mode. No
    query and no cache round trip."""
    from flags.snapshot import snapshot_current, snapshot_last

    user = getattr(request, "user", None)
    unit = None if user_unit(user) is not None else request_unit(request)
    snap = snapshot_current() or snapshot_last()
    names = sorted(snap.flags) if snap is not None else []
    return {name: flag_enabled(name, user=user, unit=unit) for name in names}


def flags_all() -> list[dict[str, Any]]:
    """Every flag with its rules (for staff)."""
    return [flag_describe(flag) for flag in Flag.objects.order_by("name")]


def flag_describe(flag: Flag) -> dict[str, Any]:
    return {
        "name": flag.name,
        "everyone": flag.everyone,
        "percent": float(flag.percent) if flag.percent is not None else None,
        "rollout_group": flag.group,
        "safe_value": flag_safe_value(flag.name, flag),
        "superusers": flag.superusers,
        "staff": flag.staff,
        "authenticated": flag.authenticated,
        "testing": flag.testing,
        "note": flag.note,
        "modified": flag.modified,
    }


def flag_get(name: str) -> Flag:
    flag = Flag.objects.filter(name=name).first()
    if flag is None:
        raise NotFound(f"No flag is named {name!r}.")
    return flag


def history_rows(records: Any, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """django-simple-history rows, newest first: who, when, what changed, why, and the
    fields as they became."""
    rows = []
    for record in records.select_related("history_user").order_by("-history_id")[:200]:
        rows.append(
            {
                "history_id": record.history_id,
                "changed_at": record.history_date,
                "changed_by": record.history_user.get_username() if record.history_user else None,
                "change": {"+": "created", "~": "changed", "-": "deleted"}.get(record.history_type, ""),
                "reason": record.history_change_reason or "",
                "values": {
                    name: (float(v) if isinstance(v, Decimal) else v)
                    for name in fields
                    for v in [getattr(record, name)]
                },
            }
        )
    return rows


def flag_history(name: str) -> list[dict[str, Any]]:
    return history_rows(
        Flag.history.filter(name=name), ("everyone", "percent", "safe_value", "rollout_group", "staff", "testing")
    )


def switches_all() -> list[dict[str, Any]]:
    return [
        {"name": s.name, "active": s.active, "note": s.note, "modified": s.modified}
        for s in Switch.objects.order_by("name")
    ]
