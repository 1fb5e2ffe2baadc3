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

import logging
import threading
from dataclasses import dataclass

from django.conf import settings

from ops.flusher import Flusher

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


def _flush_thread_on() -> bool:
    return bool(
        getattr(settings, "ROLLOUTS_EXPOSURE_FLUSH_THREAD", getattr(settings, "REQUEST_METRICS_FLUSH_THREAD", False))
    )


# The flusher thread (ops/flusher.py).
_flusher = Flusher(
    name="rollout-exposures-flush",
    flush=exposures_flush,
    seconds=lambda: _setting("ROLLOUTS_EXPOSURE_FLUSH_SECONDS", 5.0),
    enabled=_flush_thread_on,
)


def exposure_flusher() -> Flusher:
    return _flusher


def exposure_flusher_ensure() -> None:
    """Start this process's flusher thread once (after a fork too)."""
    _flusher.ensure()
