"""Load generation: keep a fixed number of runs in flight and read each run's outcome from
the database (``MatchRun.duration_ms`` is submit -> ack by the database's clock)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from bench.common.report import pct

FINISHED = ("ready", "error")
STALL_SECONDS = 30.0


class Stalled(RuntimeError):
    """No run finished (and none was submitted) for ``stall_s`` seconds: the pipeline is stuck,
    and waiting out the phase's timeout would only hide why."""


@dataclass(frozen=True)
class RunResult:
    pk: int
    run_id: str
    url: str
    status: str
    duration_ms: int | None
    processing_ms: float | None  # started_at -> finished_at (DB clock)
    match_count: int
    owner: str
    startup_id: int | None
    client_ms: float  # bench clock: submit call started -> first poll that saw it finished
    submit_ms: float  # bench clock: the submit call alone (HTTP POST round trip)
    submit_wall: float  # time.time() when the submit call started (same clock as PostgreSQL's)
    seen_wall: float  # time.time() of the poll that saw the run finished


@dataclass
class LoopResult:
    results: list[RunResult] = field(default_factory=list)
    wall_s: float = 0.0
    timed_out: bool = False
    submit_errors: list[str] = field(default_factory=list)

    @property
    def durations(self) -> np.ndarray:
        return np.array(
            [r.duration_ms for r in self.results if r.status == "ready" and r.duration_ms is not None], dtype=float
        )

    @property
    def runs_per_second(self) -> float:
        ready = sum(1 for r in self.results if r.status == "ready")
        return ready / self.wall_s if self.wall_s > 0 else 0.0


class Watcher:
    """Reads finished runs from the bench database on its own autocommit connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def finished(self, run_ids: Sequence[str]) -> list[tuple]:
        rows = self.conn.execute(
            """
            SELECT run_id::text, id, status, duration_ms,
                   EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000,
                   match_count, lease_owner, startup_id
            FROM runs_matchrun
            WHERE run_id = ANY(%s::uuid[]) AND status = ANY(%s)
            """,
            (list(run_ids), list(FINISHED)),
        ).fetchall()
        return rows

    def close(self) -> None:
        self.conn.close()


def http_submitter(*, port: int) -> Callable[[str], str]:
    """POST /api/match/run on the bench's server; returns the new run's id."""

    def submit(url: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            body = json.dumps({"url": url})
            conn.request(
                "POST", "/api/match/run", body=body, headers={"Content-Type": "application/json", "Connection": "close"}
            )
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        if response.status != 202:
            raise RuntimeError(f"POST /api/match/run {url}: HTTP {response.status} {payload[:300]!r}")
        return str(json.loads(payload)["run_id"])

    return submit


def service_submitter() -> Callable[[str], str]:
    """``runs.services.match_run_submit`` in this process (for the alternatives, whose
    workers poll the queue instead of being woken through Celery)."""
    from runs.services import match_run_submit

    def submit(url: str) -> str:
        submission = match_run_submit(url=url)
        if not submission.created:
            raise RuntimeError(f"{url} already had an active run {submission.run.run_id}")
        return str(submission.run.run_id)

    return submit


def url_cycle(urls: Sequence[str], *, start: int = 0) -> Iterator[str]:
    i = start
    while True:
        yield urls[i % len(urls)]
        i += 1


def closed_loop(
    *,
    submit: Callable[[str], str],
    urls: Iterator[str],
    total: int,
    concurrency: int,
    watcher: Watcher,
    timeout: float,
    poll_s: float = 0.004,
    until: Callable[[list[RunResult]], bool] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    progress_every_s: float = 10.0,
    thread_exit: Callable[[], None] | None = None,
    stall_s: float = STALL_SECONDS,
    diagnose: Callable[[], str] | None = None,
) -> LoopResult:
    """Keep ``concurrency`` runs in flight until ``total`` have finished (or ``until`` says
    stop, or ``timeout`` seconds pass).

    Each in-flight slot is a thread that submits a run, waits until it is finished and
    submits the next one, so a slow submit never delays noticing another run's completion;
    the calling thread polls the database for finished runs every ``poll_s``.

    Raises ``Stalled`` when nothing happened for ``stall_s`` seconds (no run finished, none
    was submitted), with what ``diagnose`` says about the system (connections, logs)."""
    out = LoopResult()
    lock = threading.Lock()
    inflight: dict[str, _Pending] = {}
    counter = {"submitted": 0}
    stop = threading.Event()
    started = time.monotonic()
    activity = {"at": started}  # the last submit or finish
    deadline = started + timeout

    def slot() -> None:
        try:
            while not stop.is_set():
                with lock:
                    if counter["submitted"] >= total:
                        return
                    counter["submitted"] += 1
                    url = next(urls)
                t0 = time.monotonic()
                wall0 = time.time()
                try:
                    run_id = submit(url)
                except Exception as exc:
                    with lock:
                        out.submit_errors.append(f"{type(exc).__name__}: {exc}")
                        if len(out.submit_errors) > 20:
                            stop.set()
                    continue
                pending = _Pending(url=url, t0=t0, wall0=wall0, submit_s=time.monotonic() - t0)
                with lock:
                    inflight[run_id] = pending
                    activity["at"] = time.monotonic()
                while not pending.done.wait(0.5):
                    if stop.is_set():
                        return
        finally:
            if thread_exit is not None:
                thread_exit()

    threads = [threading.Thread(target=slot, name=f"slot-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    last_done = started
    next_progress = started + progress_every_s
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                out.timed_out = True
                break
            with lock:
                ids = list(inflight)
                idle_s = now - activity["at"]
            if idle_s >= stall_s:
                raise Stalled(
                    f"no progress for {idle_s:.0f} s: {len(out.results)} of {total} runs finished,"
                    f" {len(ids)} in flight, {counter['submitted']} submitted"
                    f" ({len(out.submit_errors)} submit errors"
                    + (f", last: {out.submit_errors[-1]}" if out.submit_errors else "")
                    + ")"
                    + (f"\n{diagnose()}" if diagnose is not None else "")
                )
            if not ids:
                if not any(t.is_alive() for t in threads):
                    break
                time.sleep(poll_s)
                continue
            rows = watcher.finished(ids)
            seen = time.monotonic()
            seen_wall = time.time()
            for run_id, pk, status, duration_ms, processing_ms, match_count, owner, startup_id in rows:
                with lock:
                    pending = inflight.pop(run_id)
                out.results.append(
                    RunResult(
                        pk=pk,
                        run_id=run_id,
                        url=pending.url,
                        status=status,
                        duration_ms=duration_ms,
                        processing_ms=float(processing_ms) if processing_ms is not None else None,
                        match_count=match_count,
                        owner=owner,
                        startup_id=startup_id,
                        client_ms=(seen - pending.t0) * 1000.0,
                        submit_ms=pending.submit_s * 1000.0,
                        submit_wall=pending.wall0,
                        seen_wall=seen_wall,
                    )
                )
                pending.done.set()
                last_done = seen
                with lock:
                    activity["at"] = seen
            if rows and until is not None and until(out.results):
                stop.set()
            if progress is not None and seen >= next_progress:
                progress(len(out.results), total, seen - started)
                next_progress = seen + progress_every_s
            if not rows:
                time.sleep(poll_s)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=35)
    if out.submit_errors and len(out.submit_errors) > 20:
        raise RuntimeError(f"too many submit errors, e.g. {out.submit_errors[0]}")
    out.wall_s = last_done - started
    return out


@dataclass
class _Pending:
    url: str
    t0: float
    wall0: float
    submit_s: float
    done: threading.Event = field(default_factory=threading.Event)


STAGES = (
    ("POST start -> row inserted", "submit_wall", "created"),
    ("inserted -> claimed (commit, wake via Redis, worker picks up)", "created", "claimed"),
    ("claimed -> started", "claimed", "started"),
    ("started -> acked (resolve startup, version check, score, ack)", "started", "finished"),
    ("acked -> seen ready (store matches, commit, 4 ms poll)", "finished", "seen_wall"),
)


def stage_breakdown(*, dsn: str, results: Sequence[RunResult]) -> list[tuple[str, float, float]]:
    """Median and p95 of each stage of the ready runs, in ms. Database and bench share the
    host's clock (loopback only), so database timestamps and ``time.time()`` compare."""
    ready = {r.pk: r for r in results if r.status == "ready"}
    if not ready:
        return []
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            """
            SELECT r.id, EXTRACT(EPOCH FROM r.created_at),
                   EXTRACT(EPOCH FROM (SELECT min(h.created_at) FROM ops_queuehistory h
                                       WHERE h.queue = 'runs.matchrun' AND h.item_id = r.id AND h.event = 'claim')),
                   EXTRACT(EPOCH FROM r.started_at), EXTRACT(EPOCH FROM r.finished_at)
            FROM runs_matchrun r WHERE r.id = ANY(%s)
            """,
            (list(ready),),
        ).fetchall()
    stamps: dict[str, list[float]] = {name: [] for name in ("submit_wall", "created", "claimed", "started", "finished")}
    stamps["seen_wall"] = []
    for pk, created, claimed, started, finished in rows:
        if None in (created, claimed, started, finished):
            continue
        r = ready[pk]
        for name, value in (
            ("submit_wall", r.submit_wall),
            ("created", float(created)),
            ("claimed", float(claimed)),
            ("started", float(started)),
            ("finished", float(finished)),
            ("seen_wall", r.seen_wall),
        ):
            stamps[name].append(value)
    arrays = {name: np.array(values) for name, values in stamps.items()}
    out = []
    for label, start, end in STAGES:
        ms = (arrays[end] - arrays[start]) * 1000.0
        if ms.size:
            out.append((label, pct(ms, 50), pct(ms, 95)))
    return out


def connections_report(dsn: str) -> str:
    """Who holds PostgreSQL's connections, by database and application_name, against
    max_connections: the first thing to read when runs stop finishing."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            limit = int(conn.execute("SELECT current_setting('max_connections')::int").fetchone()[0])  # type: ignore[index]
            rows = conn.execute(
                """
                SELECT coalesce(datname, '-'), coalesce(nullif(application_name, ''), '-'),
                       coalesce(state, '-'), count(*)
                FROM pg_stat_activity WHERE backend_type = 'client backend'
                GROUP BY 1, 2, 3 ORDER BY 4 DESC
                """
            ).fetchall()
    except psycopg.Error as exc:
        return f"PostgreSQL connections: could not connect to look ({type(exc).__name__}: {exc})"
    total = sum(row[3] for row in rows)
    lines = [f"PostgreSQL connections: {total} of max_connections {limit}"]
    lines += [f"    {n:>4}  {db} / {app} / {state}" for db, app, state, n in rows]
    return "\n".join(lines)
