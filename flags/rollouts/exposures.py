"""Exposures: the units each running rollout's stage has seen, per cohort, for the sample
ratio mismatch check.

The request path only adds ``(rollout, epoch, unit) -> cohort`` to a process-local buffer
(a dict update under a lock, and a bounded set of units already seen, so a unit's hundredth
request costs a set lookup); a daemon thread of each web process writes the buffer every
``ROLLOUTS_EXPOSURE_FLUSH_SECONDS`` with one ``INSERT ... ON CONFLICT DO NOTHING`` per batch
(a unit is counted once per stage however many processes saw it). A failed write is logged
and dropped: an exposure lost costs a little of the SRM test's power, never a request.
Other processes (tests, commands) start no thread: ``exposures_flush()`` flushes by hand.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

Key = tuple[int, int, str]  # rollout id, epoch, unit

BATCH = 1000


@dataclass(frozen=True, slots=True)
class _Seen:
    treatment: bool
    percent: float


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


class ExposureBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Key, _Seen] = {}
        self._seen: set[Key] = set()
        self.dropped = 0

    def note(self, *, rollout_id: int, epoch: int, unit: str, treatment: bool, percent: float) -> None:
        key = (rollout_id, epoch, unit[:64])
        if key in self._seen:  # the common case, without the lock: a set lookup
            return
        with self._lock:
            if key in self._seen:
                return
            if len(self._seen) >= int(_setting("ROLLOUTS_EXPOSURE_SEEN_MAX", 200_000)):
                self._seen.clear()  # forget old units: at worst they are offered again (a no-op insert)
            if len(self._pending) >= int(_setting("ROLLOUTS_EXPOSURE_BUFFER_MAX", 50_000)):
                self.dropped += 1
                return
            self._seen.add(key)
            self._pending[key] = _Seen(treatment=treatment, percent=percent)

    def take(self) -> dict[Key, _Seen]:
        with self._lock:
            taken, self._pending = self._pending, {}
        return taken

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def discard(self) -> None:
        with self._lock:
            self._pending = {}
            self._seen = set()

    def flush(self) -> int:
        """Write the buffered exposures; returns how many were offered. Never raises."""
        from flags.rollouts.models import RolloutExposure

        taken = self.take()
        if not taken:
            return 0
        rows = [
            RolloutExposure(rollout_id=rid, epoch=epoch, unit=unit, treatment=seen.treatment, percent=seen.percent)
            for (rid, epoch, unit), seen in taken.items()
        ]
        try:
            # A rollout deleted since: its rows would break the foreign key; drop them.
            from flags.rollouts.models import Rollout

            live = set(Rollout.objects.filter(pk__in={r.rollout_id for r in rows}).values_list("pk", flat=True))
            rows = [r for r in rows if r.rollout_id in live]
            RolloutExposure.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
        except Exception:
            logger.exception("rollout exposures: write of %d rows failed; dropped", len(rows))
            return 0
        return len(rows)


_buffer = ExposureBuffer()


def exposure_buffer() -> ExposureBuffer:
    return _buffer


def exposures_flush() -> int:
    return _buffer.flush()


_flusher_lock = threading.Lock()
_flusher_pid: int | None = None


def _flusher_loop() -> None:
    while True:
        time.sleep(max(_setting("ROLLOUTS_EXPOSURE_FLUSH_SECONDS", 5.0), 0.5))
        try:
            exposures_flush()
        finally:
            connections.close_all()  # this thread's connection, back to the pool


def exposure_flusher_ensure() -> None:
    """Start this process's flusher thread once (after a fork too)."""
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    thread_on = getattr(
        settings, "ROLLOUTS_EXPOSURE_FLUSH_THREAD", getattr(settings, "REQUEST_METRICS_FLUSH_THREAD", False)
    )
    if not thread_on or _setting("ROLLOUTS_EXPOSURE_FLUSH_SECONDS", 5.0) <= 0:
        return
    with _flusher_lock:
        if _flusher_pid == os.getpid():
            return
        threading.Thread(target=_flusher_loop, name="rollout-exposures-flush", daemon=True).start()
        if _flusher_pid is None:
            atexit.register(exposures_flush)
        _flusher_pid = os.getpid()
