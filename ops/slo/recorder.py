"""The process-local buffer of request counts and its flush to the database.

The middleware adds every request here (a dict update under a lock: no query on the request
path); a daemon thread in each web process flushes the buffer every
``REQUEST_METRICS_FLUSH_SECONDS`` with one upsert that increments the rows. A failed flush
is logged and its counts go back into the buffer for the next try; the buffer is bounded
(``REQUEST_METRICS_BUFFER_MAX_KEYS``) by dropping the oldest minutes first, so a database
that stays down costs old figures, never memory without limit.

Other processes (tests, commands) start no thread: ``request_metrics_flush()`` flushes by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from ops.flusher import Flusher
from ops.slo.histogram import BUCKETS, bucket_index
from ops.slo.services import RouteMinuteDelta, route_minutes_add

logger = logging.getLogger(__name__)

Key = tuple[datetime, str, str, str]  # minute, route, flag, cohort

ROUTE_MAX = 100
FLAG_MAX = 100
COHORTS = ("treatment", "control")


@dataclass
class _Counts:
    count: int = 0
    errors: int = 0
    duration_ms_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def merge(self, other: _Counts) -> None:
        self.count += other.count
        self.errors += other.errors
        self.duration_ms_sum += other.duration_ms_sum
        for index, value in enumerate(other.buckets):
            self.buckets[index] += value


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class RequestMetricsBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Key, _Counts] = {}
        self.dropped = 0  # counts lost to the bound since the process started

    def record(
        self, *, route: str, at: datetime, duration_ms: float, error: bool, tags: Iterable[tuple[str, str]] = ()
    ) -> None:
        minute = minute_of(at)
        index = bucket_index(duration_ms)
        keys = [(minute, route[:ROUTE_MAX], "", "")]
        keys += [(minute, route[:ROUTE_MAX], flag[:FLAG_MAX], cohort) for flag, cohort in tags]
        with self._lock:
            for key in keys:
                counts = self._counts.get(key)
                if counts is None:
                    self._bound(room=1)
                    counts = self._counts[key] = _Counts()
                counts.count += 1
                counts.errors += int(error)
                counts.duration_ms_sum += duration_ms
                counts.buckets[index] += 1

    def _bound(self, *, room: int) -> None:
        """Drop the oldest minutes until ``room`` more keys fit (the lock is held)."""
        limit = max(int(settings.REQUEST_METRICS_BUFFER_MAX_KEYS), 1)
        while self._counts and len(self._counts) + room > limit:
            oldest = min(key[0] for key in self._counts)
            gone = [key for key in self._counts if key[0] == oldest]
            for key in gone:
                self.dropped += self._counts.pop(key).count
            logger.warning("request metrics: buffer full, dropped %d rows of %s", len(gone), oldest.isoformat())

    def take(self) -> dict[Key, _Counts]:
        with self._lock:
            taken, self._counts = self._counts, {}
        return taken

    def give_back(self, taken: dict[Key, _Counts]) -> None:
        with self._lock:
            for key, counts in taken.items():
                mine = self._counts.get(key)
                if mine is None:
                    self._counts[key] = counts
                else:
                    mine.merge(counts)
            self._bound(room=0)

    def pending(self) -> int:
        with self._lock:
            return len(self._counts)

    def flush(self) -> int:
        """Write the buffered counts; returns the number of rows written (0 when the write
        failed: the counts are back in the buffer). Never raises."""
        taken = self.take()
        if not taken:
            return 0
        deltas = [
            RouteMinuteDelta(
                minute=minute,
                route=route,
                flag=flag,
                cohort=cohort,
                count=c.count,
                errors=c.errors,
                duration_ms_sum=c.duration_ms_sum,
                buckets=tuple(c.buckets),
            )
            for (minute, route, flag, cohort), c in taken.items()
        ]
        try:
            return route_minutes_add(deltas=deltas)
        except Exception:
            logger.exception("request metrics: flush of %d rows failed, kept for the next try", len(deltas))
            self.give_back(taken)
            return 0


_buffer = RequestMetricsBuffer()


def request_metrics_buffer() -> RequestMetricsBuffer:
    return _buffer


def request_metrics_record(
    *, route: str, duration_ms: float, status: int, at: datetime | None = None, tags: Iterable[tuple[str, str]] = ()
) -> None:
    """Count one request (in memory; the next flush writes it)."""
    _buffer.record(route=route, at=at or datetime.now(UTC), duration_ms=duration_ms, error=status >= 500, tags=tags)


def request_metrics_flush() -> int:
    """Write this process's buffered counts now (tests, shutdown). Never raises."""
    return _buffer.flush()


def request_metrics_discard() -> None:
    """Forget the buffered counts (tests: other tests' requests are not this test's)."""
    _buffer.take()


# -- the flusher thread (ops/flusher.py) ---------------------------------------------------
_flusher = Flusher(
    name="request-metrics-flush",
    flush=request_metrics_flush,
    seconds=lambda: float(settings.REQUEST_METRICS_FLUSH_SECONDS),
    enabled=lambda: bool(settings.REQUEST_METRICS_FLUSH_THREAD),
)


def request_metrics_flusher() -> Flusher:
    return _flusher


def request_metrics_flusher_ensure() -> None:
    """Start this process's flusher thread once (after a fork too: the parent's thread does
    not follow the child)."""
    _flusher.ensure()
