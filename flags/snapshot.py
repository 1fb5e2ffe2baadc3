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
    """The process's snapshot, shared by its threads: only ever loaded from committed data."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.checked_at = float("-inf")  # monotonic time of the last stamp check
        self.available = False
        self.dirty = True  # reload at the next check, whatever the stamp says
        self.failures = 0
        self.logged_at = float("-inf")
        self.lock = threading.Lock()


class _Local(threading.local):
    """A thread that wrote what the snapshot carries, inside a transaction still open, reads
    its own writes from a snapshot of its own, which no other thread sees: a rollback cannot
    leak, and a commit is seen by the thread at once (it reloads the shared one as the
    transaction ends) and by the other threads and processes at their next stamp check."""

    def __init__(self) -> None:
        self.wrote = False
        self.stale = False
        self.snapshot: Snapshot | None = None
        self.checked_at = float("-inf")


_state = _State()
_local = _Local()


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
    return not state.dirty and now - state.checked_at < _check_seconds()


def _unreadable(exc: DatabaseError, now: float) -> None:
    state = _state
    state.available = False
    state.failures += 1
    if now - state.logged_at >= 60.0:
        state.logged_at = now
        logger.error("flags: the store cannot be read (%s); answering safe values", exc)
    # A broken connection must not stay broken for the next query of this thread.
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def _own_writes(now: float) -> Snapshot | None:
    """The snapshot of a thread that wrote inside the transaction it is still in."""
    local = _local
    if local.snapshot is not None and not local.stale and now - local.checked_at < _check_seconds():
        return local.snapshot
    try:
        stamp = _stamp_read()
        if local.snapshot is None or local.stale or local.snapshot.stamp != stamp:
            local.snapshot = _load(stamp)
            local.stale = False
    except DatabaseError as exc:
        _unreadable(exc, now)
        return None
    local.checked_at = now
    return local.snapshot


def snapshot_current() -> Snapshot | None:
    """The process's snapshot, refreshed if the stamp moved; None while the store cannot be
    read (callers answer safe values)."""
    state = _state
    now = time.monotonic()
    force = False
    if _local.wrote:
        if connection.in_atomic_block:
            return _own_writes(now)
        # This thread's transaction ended (committed or rolled back): the shared snapshot,
        # reloaded now.
        _local.wrote, _local.snapshot = False, None
        force = True
    if not force and _fresh(state, now):
        return state.snapshot if state.available else None
    with state.lock:
        if not force and _fresh(state, now):
            return state.snapshot if state.available else None
        try:
            stamp = _stamp_read()
            if force or state.dirty or state.snapshot is None or state.snapshot.stamp != stamp:
                state.dirty = False
                state.snapshot = _load(stamp)
            state.available = True
        except DatabaseError as exc:
            _unreadable(exc, now)
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
    """Forget the snapshot: the next check reloads (tests; a new section)."""
    _state.dirty = True
    _local.wrote, _local.stale, _local.snapshot = False, False, None


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
    """Bump the stamp (call inside the transaction of a write the snapshot carries): this
    thread reads its own write at once, the process's other threads and every other process
    within a stamp check of the commit."""
    from flags.models import Stamp

    with transaction.atomic():
        if not Stamp.objects.filter(pk=1).update(version=F("version") + 1):
            Stamp.objects.get_or_create(pk=1, defaults={"version": 1})
    _local.wrote = True
    _local.stale = True


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
