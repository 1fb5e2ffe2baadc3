"""Evaluating flags from anywhere: views, services, Celery tasks, commands, an offline replay.

A unit's bucket for a flag is ``MurmurHash3_x86_32("<group>:<unit>", seed=0) % 100 + 1``
(1..100), the normalization Unleash's SDKs use for gradual rollouts, so a team coming from
Unleash keeps its cohorts. A unit is in a rollout of P % when its bucket is at most P: raising
5 to 25 keeps the first 5 %. ``flag_enabled`` and waffle's ``flag_is_active(request, name)``
give the same answer for the same unit.

Evaluation reads the in-process snapshot (flags.snapshot): no query and no cache round trip
per check. It never raises: while the store cannot be read it answers safe values. These are
reads; the writes that change flags are in flags.services (which also offers these names).
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import mmh3
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from waffle.utils import get_setting

from flags.names import FLAG_SAFE_VALUES, MATCH_ENGINE_V1, SAFE_MODE
from flags.snapshot import FlagView, snapshot_current, snapshot_last

logger = logging.getLogger(__name__)

UNIT_COOKIE = "mp_unit"  # the anonymous unit: set once, for a year, signed
UNIT_COOKIE_MAX_AGE = 365 * 24 * 3600
UNIT_COOKIE_SALT = "flags.rollout-unit"


def flag_safe_value(name: str, flag: object | None = None) -> bool | None:
    """What the flag reads in safe mode: declared in code (flags.names), else by an operator
    on the flag, else None (safe mode leaves it alone)."""
    declared = FLAG_SAFE_VALUES.get(name)
    if declared is not None:
        return declared
    safe = getattr(flag, "safe_value", None)
    return None if safe is None else bool(safe)


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


def unit_cookie_read(request: HttpRequest) -> str | None:
    """The anonymous unit the visitor's cookie carries, if we signed it (a unit a client
    makes up is no unit: it could mint one per request)."""
    value = request.get_signed_cookie(UNIT_COOKIE, default=None, salt=UNIT_COOKIE_SALT)
    return value if value and len(value) <= 64 else None


def request_unit(request: HttpRequest) -> str:
    """The request's unit: the member's id when signed in, else the anonymous unit of the
    signed cookie (made here when the visitor has none; RolloutUnitMiddleware sets it)."""
    member = user_unit(getattr(request, "user", None))
    if member is not None:
        return member
    unit = getattr(request, "rollout_unit", None) or unit_cookie_read(request)
    if not unit:
        unit = uuid.uuid4().hex
        request.rollout_unit_new = True  # type: ignore[attr-defined]
    request.rollout_unit = unit  # type: ignore[attr-defined]
    return unit


def safe_mode_active() -> bool:
    """The global safe-mode switch, from the snapshot; readable outside a request (workers,
    beat, health). While the store cannot be read, safe mode reads as on."""
    snap = snapshot_current()
    if snap is None:
        return True
    return bool(snap.switches.get(SAFE_MODE, False))


def safe_value_now(flag: object) -> bool | None:
    """The flag's safe value while safe mode is on; None otherwise (or if it declares none)."""
    safe = flag_safe_value(str(getattr(flag, "name", "")), flag)
    if safe is None:
        return None
    return safe if safe_mode_active() else None


def _unreadable_answer(name: str) -> bool:
    last = snapshot_last()
    safe = flag_safe_value(name, last.flags.get(name) if last is not None else None)
    return safe if safe is not None else bool(get_setting("FLAG_DEFAULT"))


def _user_group_ids(user: User) -> frozenset[int]:
    # The one rule that needs a query, once per member object (a request's or a task's),
    # and only for flags that name groups.
    cached: frozenset[int] | None = getattr(user, "_flags_group_ids", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("pk", flat=True))
        user._flags_group_ids = cached  # type: ignore[attr-defined]
    return cached


def flag_rule_match(flag: FlagView, user: User | AnonymousUser | None) -> bool:
    """Whether one of waffle's per-member rules (authenticated, users, superusers, staff,
    groups) turns the flag on for this member: then the percentage is not what decides."""
    if user is None or not user.is_authenticated:
        return False
    if flag.authenticated or user.pk in flag.user_ids:
        return True
    if (flag.superusers and user.is_superuser) or (flag.staff and user.is_staff):
        return True
    return bool(flag.group_ids) and not flag.group_ids.isdisjoint(_user_group_ids(user))  # type: ignore[arg-type]


def _view_enabled(flag: FlagView, *, safe_mode: bool, user: User | AnonymousUser | None, unit: str | None) -> bool:
    if safe_mode:
        safe = flag_safe_value(flag.name, flag)
        if safe is not None:
            return safe
    if flag.everyone is not None:
        return flag.everyone
    if flag_rule_match(flag, user):
        return True
    member = user_unit(user)
    unit = member if member is not None else unit
    if unit is None or not flag.percent or flag.percent <= 0:
        return False
    return rollout_bucket(group=flag.group, unit=unit) <= flag.percent


def flag_enabled(name: str, *, user: User | AnonymousUser | None = None, unit: str | None = None) -> bool:
    """Whether the flag is on for this member (or this unit, when there is no member), with
    no request: waffle's rules that need none (everyone, authenticated, users, superusers,
    staff, groups), then the sticky percentage. Safe mode wins where the flag declares a
    safe value. Never raises: while the store cannot be read, the flag's safe value (else
    waffle's default) is the answer, and the failure is counted and logged."""
    try:
        snap = snapshot_current()
        if snap is None:
            return _unreadable_answer(name)
        flag = snap.flags.get(name)
        if flag is None:
            return bool(get_setting("FLAG_DEFAULT"))
        return _view_enabled(flag, safe_mode=bool(snap.switches.get(SAFE_MODE, False)), user=user, unit=unit)
    except Exception:
        logger.exception("flag %s could not be evaluated; answering its safe value", name)
        return _unreadable_answer(name)


def switch_enabled(name: str) -> bool:
    """A switch from the snapshot (off when unknown; off while the store cannot be read,
    except safe mode itself, which then reads as on)."""
    snap = snapshot_current()
    if snap is None:
        return name == SAFE_MODE
    return bool(snap.switches.get(name, False))


def match_engine_enabled(*, request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return flag_enabled(MATCH_ENGINE_V1, user=user, unit=None if user_unit(user) else request_unit(request))
