"""The in-process snapshot every evaluation reads: all flags, switches, samples and config,
plus sections other parts register (the running rollouts), stamped with the version of the
``flags.Stamp`` row.

Every write (a flag, switch, sample, config value or rollout, from the admin, the API, a
service or a migration) bumps the stamp in its own transaction. A process reads the stamp at
most once every ``FLAGS_STAMP_CHECK_SECONDS`` (1 s) and reloads the whole snapshot only when
it changed, so a check costs no query and no cache round trip, and a flip is seen by every
web and worker process within about a second. A write made in this process is seen by it at
once.

If the stamp cannot be read (the database is down), the snapshot reads as *unavailable*:
evaluations answer their declared safe values, the failure is counted
(``store_failures()``, and ``matchplatform_flags_store_failures_total`` on /metrics) and logged at most once
a minute, and the next check retries after the same interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlagView:
    """A flag as the snapshot holds it: waffle's rules and ours, no model instance."""

    pk: int
    name: str
    everyone: bool | None
    percent: Decimal | None
    testing: bool
    superusers: bool
    staff: bool
    authenticated: bool
    languages: str
    rollout_group: str
    safe_value: bool | None
    user_ids: frozenset[int]
    group_ids: frozenset[int]

    @property
    def group(self) -> str:
        return self.rollout_group or self.name


@dataclass(frozen=True)
class Snapshot:
    stamp: int
    flags: dict[str, FlagView]
    switches: dict[str, bool]
    samples: dict[str, Decimal]
    config: dict[str, Any]  # name -> the stored JSON value (validated on read by flags.config)
    sections: dict[str, Any] = field(default_factory=dict)
    # Config values as their schemas read them, filled on first read (flags.config.selectors).
    typed: dict[str, Any] = field(default_factory=dict)


_SECTIONS: dict[str, Callable[[], Any]] = {}


def snapshot_section_register(name: str, loader: Callable[[], Any]) -> None:
    """Carry ``loader()``'s result in every snapshot as section ``name`` (loaded with the rest,
    when the stamp changes). Register in ``AppConfig.ready``."""
    _SECTIONS[name] = loader
    snapshot_clear()


class _State:
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.checked_at = float("-inf")  # monotonic time of the last stamp check
        self.available = False
        self.dirty = True  # a write in this process: reload at the next check
        # Loaded inside a transaction (maybe seeing its own uncommitted writes): reload once
        # outside it, whatever the stamp says, since a rollback may have undone what was read.
        self.tentative = False
        self.failures = 0
        self.logged_at = float("-inf")
        self.lock = threading.Lock()


_state = _State()


def _check_seconds() -> float:
    return float(getattr(settings, "FLAGS_STAMP_CHECK_SECONDS", 1.0))


def _stamp_read() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM flags_stamp WHERE id = 1")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _load(stamp: int) -> Snapshot:
    from waffle.models import Sample, Switch

    from flags.config.models import ConfigValue
    from flags.models import Flag

    users: dict[int, set[int]] = {}
    groups: dict[int, set[int]] = {}
    for flag_id, user_id in Flag.users.through.objects.values_list("flag_id", "user_id"):
        users.setdefault(flag_id, set()).add(user_id)
    for flag_id, group_id in Flag.groups.through.objects.values_list("flag_id", "group_id"):
        groups.setdefault(flag_id, set()).add(group_id)
    flags = {
        f.name: FlagView(
            pk=f.pk,
            name=f.name,
            everyone=f.everyone,
            percent=f.percent,
            testing=f.testing,
            superusers=f.superusers,
            staff=f.staff,
            authenticated=f.authenticated,
            languages=f.languages,
            rollout_group=f.rollout_group,
            safe_value=f.safe_value,
            user_ids=frozenset(users.get(f.pk, ())),
            group_ids=frozenset(groups.get(f.pk, ())),
        )
        for f in Flag.objects.all()
    }
    return Snapshot(
        stamp=stamp,
        flags=flags,
        switches=dict(Switch.objects.values_list("name", "active")),
        samples=dict(Sample.objects.values_list("name", "percent")),
        config=dict(ConfigValue.objects.values_list("name", "value")),
        sections={name: loader() for name, loader in _SECTIONS.items()},
    )


def _fresh(state: _State, now: float) -> bool:
    if state.dirty or now - state.checked_at >= _check_seconds():
        return False
    return not (state.tentative and not connection.in_atomic_block)


def snapshot_current() -> Snapshot | None:
    """The process's snapshot, refreshed if the stamp moved; None while the store cannot be
    read (callers answer safe values)."""
    state = _state
    now = time.monotonic()
    if _fresh(state, now):
        return state.snapshot if state.available else None
    with state.lock:
        if _fresh(state, now):
            return state.snapshot if state.available else None
        try:
            stamp = _stamp_read()
            in_transaction = connection.in_atomic_block
            if (
                state.dirty
                or state.snapshot is None
                or state.snapshot.stamp != stamp
                or (state.tentative and not in_transaction)
            ):
                state.dirty = False
                state.snapshot = _load(stamp)
                state.tentative = in_transaction
            state.available = True
        except DatabaseError as exc:
            state.available = False
            state.failures += 1
            if now - state.logged_at >= 60.0:
                state.logged_at = now
                logger.error("flags: the store cannot be read (%s); answering safe values", exc)
            # A broken connection must not stay broken for the next query of this process.
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
        state.checked_at = now
        return state.snapshot if state.available else None


def snapshot_last() -> Snapshot | None:
    """The last snapshot loaded, whether or not the store can be read now (for the safe
    values an admin declared on a flag)."""
    return _state.snapshot


def snapshot_section(name: str) -> Any:
    """A registered section of the current snapshot (None while the store cannot be read)."""
    snap = snapshot_current()
    return None if snap is None else snap.sections.get(name)


def flag_view(name: str) -> FlagView | None:
    snap = snapshot_current()
    return None if snap is None else snap.flags.get(name)


def snapshot_clear() -> None:
    """Forget the snapshot: the next check reloads (tests, and after this process writes)."""
    _state.dirty = True


def store_failures() -> int:
    """How many stamp checks of this process failed."""
    return _state.failures


def snapshot_metrics() -> list[Any]:
    """For /metrics: this process's stamp checks that found the store unreadable, and the
    stamp its snapshot holds (a process whose stamp lags the others is not reloading)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    failures = CounterMetricFamily(
        "matchplatform_flags_store_failures",
        "Stamp checks of the serving process that found the flag store unreadable (safe values answered).",
    )
    failures.add_metric([], store_failures())
    stamp = GaugeMetricFamily("matchplatform_flags_snapshot_stamp", "The flags stamp the serving process holds.")
    snap = _state.snapshot
    stamp.add_metric([], snap.stamp if snap is not None else 0)
    return [failures, stamp]


def stamp_bump() -> None:
    """Bump the stamp (call inside the transaction of a write the snapshot carries); this
    process reloads at its next check, the others within a second of the commit."""
    from flags.models import Stamp

    with transaction.atomic():
        if not Stamp.objects.filter(pk=1).update(version=F("version") + 1):
            Stamp.objects.get_or_create(pk=1, defaults={"version": 1})
    snapshot_clear()


def _on_write(sender: Any, **kwargs: Any) -> None:
    if str(kwargs.get("action", "post")).startswith("pre"):  # m2m: count the change once, after it
        return
    if kwargs.get("raw"):  # loaddata: the fixture's stamp row is what it is
        return
    if sender is not None and getattr(sender, "__name__", "").startswith("Historical"):
        return
    stamp_bump()


def stamp_signals_connect(*models: Any) -> None:
    """Bump the stamp on every save and delete of these models (and m2m changes of the flag)."""
    for model in models:
        post_save.connect(_on_write, sender=model, dispatch_uid=f"flags-stamp-save-{model._meta.label}")
        post_delete.connect(_on_write, sender=model, dispatch_uid=f"flags-stamp-delete-{model._meta.label}")


def stamp_m2m_connect(*throughs: Any) -> None:
    for through in throughs:
        m2m_changed.connect(_on_write, sender=through, dispatch_uid=f"flags-stamp-m2m-{through._meta.label}")
