"""The discovery queue under load: the maximum throughput of W worker processes draining a
full queue, then an offered load at a fraction of it for a bounded time, and the age of
each job (enqueue -> claimed, enqueue -> done) from the database's own timestamps.

Jobs are enqueued set-based, as ``discovery_enqueue_for_user`` writes them (a ``queued``
DiscoveryJob per member and interest, and its ``"" -> queued`` history row in the same
statement), for (member, interest) pairs taken in turn from ``discovery_userinterest``. The
workers are forked processes that call ``discovery.services.discovery_jobs_process_batch``
(the Celery task's body: claim a batch, process each job, ack it with its gap bookkeeping).
Draining, a worker stops when a claim comes back empty; under the offered load it polls every
``poll`` seconds when the queue is empty (production wakes a worker on commit through the
broker instead; the poll adds at most ``poll`` to a job's age).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

LABEL = "discovery.discoveryjob"

_ENQUEUE_SQL = """
    WITH pairs AS (
        SELECT user_id, interest_id FROM discovery_userinterest ORDER BY id OFFSET %(offset)s LIMIT %(n)s
    ), jobs AS (
        INSERT INTO discovery_discoveryjob (status, topic, user_id, interest_id, priority, attempts, rescues,
            max_attempts, available_at, lease_owner, last_error, created_at, updated_at)
        SELECT 'queued', 'discovery.refresh', user_id, interest_id, 100, 0, 0, 3, clock_timestamp(), '', '',
               clock_timestamp(), clock_timestamp()
        FROM pairs
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    INSERT INTO ops_queuehistory (queue, item_id, from_status, to_status, event, lease_owner, attempt, error,
        created_at)
    SELECT %(label)s, id, '', 'queued', 'submit', '', 0, '', clock_timestamp() FROM jobs
"""


class Enqueuer:
    """Enqueue ``n`` jobs at a time, for the next pairs of members' interests (wrapping)."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        row = self.conn.execute("SELECT count(*) FROM discovery_userinterest").fetchone()
        self.pairs = int(row[0]) if row else 0
        self.offset = 0

    def enqueue(self, n: int) -> int:
        added = 0
        while n > 0:
            take = min(n, self.pairs - self.offset)
            cur = self.conn.execute(_ENQUEUE_SQL, {"offset": self.offset, "n": take, "label": LABEL})
            added += max(cur.rowcount, 0)
            self.offset = (self.offset + take) % self.pairs
            n -= take
        return added

    def close(self) -> None:
        self.conn.close()


def _worker(barrier: Any, stop: Any, batch: int, drain: bool, poll: float, deadline: float, out: Any) -> None:
    from bench.common.procs import default_signals

    default_signals()
    from django.db import connections

    from discovery.services import discovery_jobs_process_batch

    claimed = 0
    error = ""
    try:
        barrier.wait(timeout=60)
        while time.monotonic() < deadline and not stop.is_set():
            got = discovery_jobs_process_batch(limit=batch)
            claimed += got
            if got == 0:
                if drain:
                    break
                time.sleep(poll)
    except Exception as exc:
        error = repr(exc)
    finally:
        connections.close_all()
    out.put((claimed, error))


@dataclass
class Workers:
    """W forked worker processes (the parent's Django connections are closed before the fork)."""

    count: int
    batch: int
    drain: bool
    poll: float = 0.05
    timeout: float = 120.0
    procs: list[Any] = field(default_factory=list)

    def start(self) -> None:
        from django.db import connections

        connections.close_all()
        ctx = mp.get_context("fork")
        self.barrier = ctx.Barrier(self.count + 1)
        self.stop_event = ctx.Event()
        self.out = ctx.Queue()
        deadline = time.monotonic() + self.timeout
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(self.barrier, self.stop_event, self.batch, self.drain, self.poll, deadline, self.out),
                daemon=True,
            )
            for _ in range(self.count)
        ]
        for proc in self.procs:
            proc.start()

    def go(self) -> float:
        self.barrier.wait(timeout=60)
        return time.perf_counter()

    def _collect(self) -> tuple[int, list[str]]:
        """Every worker's report (jobs done, an error or ""), each waited for in turn: the jobs
        done in all and the errors, a worker that did not report among them."""
        results = []
        for _ in self.procs:
            try:
                results.append(self.out.get(timeout=self.timeout + 30))
            except Exception:
                break
        errors = [r[1] for r in results if r[1]]
        if len(results) < len(self.procs):
            errors.append(f"{len(self.procs) - len(results)} workers did not report")
        return sum(r[0] for r in results), errors

    def join(self) -> tuple[int, list[str]]:
        self.stop_event.set()
        done, errors = self._collect()
        self.kill()
        return done, errors

    def wait_drained(self) -> tuple[int, list[str], float]:
        """For a draining run: every worker back (the queue empty); the time it happened."""
        done, errors = self._collect()
        ended = time.perf_counter()
        self.kill()
        return done, errors, ended

    def kill(self) -> None:
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


@dataclass
class Throughput:
    label: str
    jobs: int
    workers: int
    batch: int
    seconds: float
    errors: list[str]

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else math.nan


def queue_reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE discovery_discoveryjob, discovery_gap")
        conn.execute("DELETE FROM ops_queuehistory WHERE queue = %s", [LABEL])
        conn.execute("DELETE FROM ops_deadletter WHERE queue = %s", [LABEL])


def throughput_measure(*, dsn: str, label: str, jobs: int, workers: int, batch: int, timeout: float) -> Throughput:
    """Enqueue ``jobs`` (not timed), then time W workers draining them (go -> last one back)."""
    queue_reset(dsn)
    enq = Enqueuer(dsn)
    try:
        added = enq.enqueue(jobs)
    finally:
        enq.close()
    pool = Workers(count=workers, batch=batch, drain=True, timeout=timeout)
    pool.start()
    t0 = pool.go()
    claimed, errors, ended = pool.wait_drained()
    if claimed != added:
        errors.append(f"claimed {claimed:,} of {added:,}")
    return Throughput(label=label, jobs=added, workers=workers, batch=batch, seconds=ended - t0, errors=errors)


@dataclass
class Offered:
    rate: float  # jobs/s offered
    seconds: float
    enqueued: int
    achieved_rate: float
    claim_age_s: np.ndarray
    done_age_s: np.ndarray
    left: int  # jobs not done by the end of the drain
    errors: list[str]
    poll_s: float = 0.0


def offered_load(
    *, dsn: str, rate: float, seconds: float, workers: int, batch: int, poll: float, drain_timeout: float = 30.0
) -> Offered:
    """Enqueue at ``rate`` jobs/s (a slice every 50 ms) for ``seconds`` while W polling workers
    process; then let them finish, and read every job's ages from the database."""
    queue_reset(dsn)
    enq = Enqueuer(dsn)
    pool = Workers(count=workers, batch=batch, drain=False, poll=poll, timeout=seconds + drain_timeout + 30)
    pool.start()
    errors: list[str] = []
    enqueued = 0
    try:
        t0 = pool.go()
        step = 0.05
        ticks = int(seconds / step)
        for k in range(ticks):
            due = t0 + k * step
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            n = int(rate * (k + 1) * step) - int(rate * k * step)
            if n:
                enqueued += enq.enqueue(n)
        offered_s = time.perf_counter() - t0
        drain_until = time.monotonic() + drain_timeout
        while time.monotonic() < drain_until:
            row = enq.conn.execute(
                "SELECT count(*) FROM discovery_discoveryjob WHERE status IN ('queued', 'processing')"
            ).fetchone()
            if row and row[0] == 0:
                break
            time.sleep(0.1)
        _, worker_errors = pool.join()
        errors += worker_errors
        rows = enq.conn.execute(
            "SELECT extract(epoch FROM h.created_at - j.created_at), extract(epoch FROM j.finished_at - j.created_at)"
            " FROM discovery_discoveryjob j JOIN ops_queuehistory h ON h.queue = %s AND h.item_id = j.id"
            " AND h.event = 'claim' WHERE j.status = 'done'",
            [LABEL],
        ).fetchall()
        left_row = enq.conn.execute("SELECT count(*) FROM discovery_discoveryjob WHERE status <> 'done'").fetchone()
    finally:
        pool.kill()
        enq.close()
    return Offered(
        rate=rate,
        seconds=seconds,
        enqueued=enqueued,
        achieved_rate=enqueued / offered_s if offered_s > 0 else math.nan,
        claim_age_s=np.array([float(r[0]) for r in rows]),
        done_age_s=np.array([float(r[1]) for r in rows]),
        left=int(left_row[0]) if left_row else -1,
        errors=errors,
        poll_s=poll,
    )


def queue_checks(dsn: str) -> tuple[bool, str]:
    """After a run: every job done, claimed once (attempts 1, one claim and one ack in history)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done' AND attempts = 1 AND finished_at IS NOT NULL),"
            " (SELECT count(*) FROM ops_queuehistory WHERE queue = %s AND event = 'claim'),"
            " (SELECT count(*) FROM ops_queuehistory WHERE queue = %s AND event = 'ack')"
            " FROM discovery_discoveryjob",
            [LABEL, LABEL],
        ).fetchone()
    assert row is not None
    total, good, claims, acks = (int(x) for x in row)
    ok = total > 0 and total == good == claims == acks
    return ok, f"{total:,} jobs, {good:,} done once, {claims:,} claims and {acks:,} acks in history"
