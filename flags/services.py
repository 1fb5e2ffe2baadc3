"""Evaluating flags from anywhere: views, services, Celery tasks, commands, an offline replay.

A unit's bucket for a flag is ``MurmurHash3_x86_32("<group>:<unit>", seed=0) % 100 + 1``
(1..100), the normalization Unleash's SDKs use for gradual rollouts, so a team coming from
Unleash keeps its cohorts. A unit is in a rollout of P % when its bucket is at most P: raising
5 to 25 keeps the first 5 %. ``flag_enabled`` and waffle's ``flag_is_active(request, name)``
give the same answer for the same unit.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import mmh3
from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError
from django.http import HttpRequest
from waffle import get_waffle_flag_model, switch_is_active
from waffle.utils import get_setting

from flags.names import MATCH_ENGINE_V1, SAFE_MODE

logger = logging.getLogger(__name__)

UNIT_COOKIE = "mp_unit"  # the anonymous unit: set once, for a year
UNIT_COOKIE_MAX_AGE = 365 * 24 * 3600


def murmur3_32(text: str) -> int:
    """MurmurHash3 x86_32 of the text's UTF-8 bytes, seed 0, unsigned (the mmh3 package)."""
    return int(mmh3.hash(text, 0, signed=False))


def rollout_bucket(*, group: str, unit: str) -> int:
    """The unit's bucket for a group, 1..100."""
    return murmur3_32(f"{group}:{unit}") % 100 + 1


def unit_in_rollout(flag: object, *, unit: str | None) -> bool:
    """Whether ``unit`` falls within the flag's percentage (never, with no unit)."""
    percent = getattr(flag, "percent", None)
    if unit is None or not percent or percent <= 0:
        return False
    return Decimal(rollout_bucket(group=flag.group, unit=unit)) <= percent  # type: ignore[attr-defined]


def user_unit(user: User | AnonymousUser | None) -> str | None:
    """A member's unit: their id."""
    if user is not None and user.is_authenticated:
        return str(user.pk)
    return None


def request_unit(request: HttpRequest) -> str:
    """The request's unit: the member's id when signed in, else the anonymous unit cookie
    (made here when the visitor has none; RolloutUnitMiddleware sets it on the response)."""
    member = user_unit(getattr(request, "user", None))
    if member is not None:
        return member
    unit = getattr(request, "rollout_unit", None) or request.COOKIES.get(UNIT_COOKIE)
    if not unit or len(unit) > 64:
        unit = uuid.uuid4().hex
        request.rollout_unit_new = True  # type: ignore[attr-defined]
    request.rollout_unit = unit  # type: ignore[attr-defined]
    return unit


def safe_mode_active() -> bool:
    """The global safe-mode switch; readable outside a request (workers, beat, health)."""
    return bool(switch_is_active(SAFE_MODE))


def safe_value_now(flag: object) -> bool | None:
    """The flag's safe value while safe mode is on; None otherwise (or if it declares none)."""
    safe = getattr(flag, "safe_value", None)
    if safe is None:
        return None
    return bool(safe) if safe_mode_active() else None


def flag_enabled(name: str, *, user: User | AnonymousUser | None = None, unit: str | None = None) -> bool:
    """Whether the flag is on for this member (or this unit, when there is no member), with
    no request: waffle's rules that need none (everyone, superusers, staff, authenticated,
    users, groups), then the sticky percentage. Safe mode wins where the flag declares a
    safe value. Never raises: if the store cannot be read, the flag's declared safe value
    (else waffle's default) is returned and the failure logged."""
    flag = None
    try:
        flag = get_waffle_flag_model().get(name)
        if not flag.pk:
            return bool(get_setting("FLAG_DEFAULT"))
        safe = safe_value_now(flag)
        if safe is not None:
            return safe
        if flag.everyone is not None:
            return bool(flag.everyone)
        if user is not None and user.is_authenticated and flag.is_active_for_user(user):
            return True
        return unit_in_rollout(flag, unit=user_unit(user) or unit)
    except DatabaseError:
        logger.exception("flag %s could not be read; answering its safe value", name)
        safe = getattr(flag, "safe_value", None)
        return bool(safe) if safe is not None else bool(get_setting("FLAG_DEFAULT"))


def match_engine_enabled(*, request: HttpRequest) -> bool:
    from waffle import flag_is_active

    return bool(flag_is_active(request, MATCH_ENGINE_V1))
