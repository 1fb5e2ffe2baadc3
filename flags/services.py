"""Writes that change flags and switches, each with a history row naming who and why.

Evaluation (reads) is in flags.evaluation; its public names are offered here too, as the
platform's one place to import flags from (``flags.services.rollout_bucket``,
``flags.services.flag_enabled``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from waffle.models import Switch

from flags.evaluation import (
    UNIT_COOKIE,
    UNIT_COOKIE_MAX_AGE,
    UNIT_COOKIE_SALT,
    flag_enabled,
    flag_rule_match,
    flag_safe_value,
    match_engine_enabled,
    murmur3_32,
    request_unit,
    rollout_bucket,
    safe_mode_active,
    safe_value_now,
    switch_enabled,
    unit_cookie_read,
    unit_in_rollout,
    user_unit,
)
from flags.models import Flag
from matchplatform.exceptions import InvalidInput, NotFound

__all__ = [
    "UNIT_COOKIE",
    "UNIT_COOKIE_MAX_AGE",
    "UNIT_COOKIE_SALT",
    "flag_enabled",
    "flag_percent_set",
    "flag_rule_match",
    "flag_safe_value",
    "flag_update",
    "match_engine_enabled",
    "murmur3_32",
    "request_unit",
    "rollout_bucket",
    "safe_mode_active",
    "safe_value_now",
    "switch_enabled",
    "switch_set",
    "unit_cookie_read",
    "unit_in_rollout",
    "user_unit",
]


_UNSET: Any = object()


def flag_update(
    name: str,
    *,
    everyone: bool | None = _UNSET,
    percent: int | Decimal | None = _UNSET,
    safe_value: bool | None = _UNSET,
    reason: str = "",
    actor: User | AnonymousUser | None = None,
) -> Flag:
    """Change a flag's rules (only those given), with a history row naming who and why."""
    if percent is not _UNSET and percent is not None:
        percent = Decimal(str(percent)).quantize(Decimal("0.1"))  # a flag keeps one decimal place
        if not 0 <= percent <= 100:
            raise InvalidInput("A percentage is between 0 and 100.", fields={"percent": ["Between 0 and 100."]})
    with transaction.atomic():
        flag: Any = Flag.objects.select_for_update(no_key=True).filter(name=name).first()
        if flag is None:
            raise NotFound(f"No flag is named {name!r}.")
        if everyone is not _UNSET:
            flag.everyone = everyone
        if percent is not _UNSET:
            flag.percent = None if percent is None else Decimal(percent)
        if safe_value is not _UNSET:
            flag.safe_value = safe_value
        flag._change_reason = (reason or None) and reason[:100]
        if actor is not None and actor.is_authenticated:
            flag._history_user = actor
        flag.save()  # its post_save bumps the snapshot stamp
    return flag  # type: ignore[no-any-return]


def flag_percent_set(
    name: str, percent: int | Decimal, *, reason: str = "", actor: User | AnonymousUser | None = None
) -> Flag:
    """Set a flag's sticky percentage (0..100), with a history row naming who and why."""
    return flag_update(name, percent=percent, reason=reason, actor=actor)


def switch_set(name: str, active: bool, *, reason: str = "", actor: User | AnonymousUser | None = None) -> Switch:
    """Turn a switch on or off (made if missing), with a history row naming who and why."""
    with transaction.atomic():
        switch: Any = Switch.objects.select_for_update(no_key=True).filter(name=name).first() or Switch(name=name)
        switch.active = active
        switch._change_reason = (reason or None) and reason[:100]
        if actor is not None and actor.is_authenticated:
            switch._history_user = actor
        switch.save()
    return switch
