"""Match runs, submit -> ready: the real pipeline vs the plain alternatives, one table per size.

One command:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/matchplatform .venv/bin/python -m bench.runs
    make bench-runs
    .venv/bin/python -m bench.runs --quick   # tiny sizes, seconds, no targets (make test runs it)

The bench never touches the database named by ``DATABASE_URL``: it drops and recreates its
own ``<name>_bench_runs`` next to it, migrates it, and drops it at the end. Celery uses
Redis db 11 (``--redis-url``), flushed at start and end. Only loopback addresses.

For each corpus size (``--sizes``, default 100k then 1M investors, seeded with
``runs.demo.investors_seed``; the 1M corpus is the 100k one plus 900k more):

* ours: two real ``celery worker --pool=solo`` processes and gunicorn (gthread, a bounded pool); runs are
  submitted with HTTP POST /api/match/run (throttle raised), the ``on_commit`` wake-up goes
  through Redis, and a worker claims, scores with its in-memory corpus and acks. The first
  run of each worker loads the corpus (reported as cold); then ``--runs`` warm runs.
* reload: two processes that claim from the same lease queue and run the same service, but
  empty the corpus cache before every run, i.e. ``corpus_load()`` from PostgreSQL per run.
* sql: two processes that score each run with one SQL query over runs_investor (float4
  arithmetic that reproduces the engine's float32 ranking) and store/ack the same way.

Load is closed-loop: ``--concurrency`` runs (default 4) are kept in flight; a new one is
submitted as soon as one is finished, each for the next demo startup in turn. Latency is
``MatchRun.duration_ms`` (the database's clock, submit -> ack); runs/s is ready runs over the
wall time from the first submit to the last completion.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common.db import BenchDatabase, bench_database, database_migrate, database_recreate
from bench.common.env import (
    DEFAULT_DATABASE_URL,
    ROOT,
    BenchError,
    bench_env,
    django_setup,
    quick_parse,
    redis_check,
    redis_flush,
)
from bench.common.frame import bench_frame
from bench.common.procs import Child, free_port, http_wait
from bench.common.report import fmt_ms, fmt_x, log, pct, verdict
from bench.runs_support.driver import (
    STALL_SECONDS,
    LoopResult,
    RunResult,
    Stalled,
    Watcher,
    closed_loop,
    connections_report,
    stage_breakdown,
    url_cycle,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
SUFFIX = "_bench_runs"
WORKERS = 2
# The web server, as make run serves it: gunicorn's threads share one bounded pool.
WEB_WORKERS = 1
WEB_THREADS = 8
WEB_POOL_MAX = 4
TARGET_P50_MS = 300.0
TARGET_P999_MS = 2000.0
TARGET_RELOAD_RATIO = 8.0
TARGET_SIZE = 1_000_000


def process_of(owner: str) -> str:
    """The worker process behind a lease owner ("w-<pid>-<random>"): ``ops.worker.worker_id``
    can hand one process two ids (see the report), so group by pid."""
    parts = owner.split("-")
    return parts[1] if len(parts) >= 3 else owner


@dataclass
class SystemResult:
    name: str
    loop: LoopResult
    detail: str = ""

    @property
    def n(self) -> int:
        return int(self.loop.durations.size)

    @property
    def p50(self) -> float:
        return pct(self.loop.durations, 50)

    @property
    def p95(self) -> float:
        return pct(self.loop.durations, 95)

    @property
    def p999(self) -> float:
        return pct(self.loop.durations, 99.9)

    @property
    def rps(self) -> float:
        return self.loop.runs_per_second


@dataclass
class SizeReport:
    size: int
    seed_s: float
    concurrency: int
    systems: dict[str, SystemResult] = field(default_factory=dict)
    cold: list[tuple[str, int, float]] = field(default_factory=list)  # owner, submit->ready ms, processing ms
    load_line: str = ""
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    client_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    submit_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notes: list[str] = field(default_factory=list)
    stages: list[tuple[str, float, float]] = field(default_factory=list)


# -- setup ------------------------------------------------------------------------------
def child_env(*, db: BenchDatabase, redis_url: str, claim_batch: int | None) -> dict[str, str]:
    env = bench_env(
        DATABASE_URL=db.url,
        CELERY_BROKER_URL=redis_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        OPS_WAKE_WORKERS="true",
        RUNS_SUBMIT_RATE="1000000/min",
        # Web: at most WEB_POOL_MAX connections however many requests are in flight. The
        # other Django processes (this one, the alternatives' workers) run one thread each.
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE=str(WEB_POOL_MAX),
    )
    if claim_batch is not None:
        env["RUNS_CLAIM_BATCH"] = str(claim_batch)
    return env


def investors_grow(*, target: int) -> tuple[int, float]:
    """Seed investors up to ``target`` with ``runs.demo.investors_seed`` (COPY); returns how
    many were added and how long it took."""
    from django.db import connection

    from runs.demo import investors_seed
    from runs.models import Investor

    have = Investor.objects.count()
    if have >= target:
        return 0, 0.0
    add = target - have
    done = [0]
    step = max(add // 10, 20_000)
    next_mark = [step]
    started = time.monotonic()

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= next_mark[0] or done[0] == add:
            rate = done[0] / max(time.monotonic() - started, 1e-9)
            log(f"  seeding: {have + done[0]:,}/{target:,} investors ({rate:,.0f}/s)")
            next_mark[0] += step

    # A different seed per slice, so the added investors are new draws, not repeats.
    investors_seed(count=add, seed=42 + have, progress=progress)
    elapsed = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_investor")
    return add, elapsed


# -- phases -----------------------------------------------------------------------------
def stall_diagnosis(*, watcher: Watcher, children: Sequence[Child]) -> str:
    """What a stalled phase leaves to read: who holds PostgreSQL's connections, and the end
    of each child's log."""
    tails = [
        f"--- {child.name} ({'running' if child.alive() else 'exited'}):\n{child.log_tail(8)}" for child in children
    ]
    return "\n".join([connections_report(watcher.dsn), *tails])


def phase_ours(
    *,
    args: argparse.Namespace,
    report: SizeReport,
    env: dict[str, str],
    urls: Sequence[str],
    watcher: Watcher,
    children: list[Child],
    logdir: Path,
    load_estimate_s: float,
) -> None:
    from bench.runs_support.driver import http_submitter

    port = free_port()
    celery = str(Path(sys.executable).with_name("celery"))
    if not Path(celery).exists():
        celery = shutil.which("celery") or "celery"
    tag = f"{report.size}"
    server = Child(
        f"web-{tag}",
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "matchplatform.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WEB_WORKERS),
            "--worker-class",
            "gthread",
            "--threads",
            str(WEB_THREADS),
        ],
        logdir / f"web-{tag}.log",
    )
    children.append(server.start(env=env, cwd=ROOT))
    workers = []
    for i in range(WORKERS):
        worker = Child(
            f"celery-{tag}-{i}",
            [
                celery,
                "-A",
                "matchplatform",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "-n",
                f"bench-runs-{i}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
            ],
            logdir / f"celery-{tag}-{i}.log",
        )
        children.append(worker.start(env=env, cwd=ROOT))
        workers.append(worker)
    try:
        http_wait(port=port, path="/api/match/run/00000000-0000-0000-0000-000000000000", timeout=60, child=server)
        log(f"ours: web on 127.0.0.1:{port}, {WORKERS} celery workers (solo pool) started; warming up")
        submit = http_submitter(port=port)

        def warm_enough(results: list[RunResult]) -> bool:
            per_owner: dict[str, int] = {}
            for r in results:
                if r.status == "ready":
                    key = process_of(r.owner)
                    per_owner[key] = per_owner.get(key, 0) + 1
            return len(per_owner) >= WORKERS and min(per_owner.values()) > args.warm_runs

        warm = closed_loop(
            submit=submit,
            urls=url_cycle(urls, start=len(urls) // 2),
            total=10**6,
            concurrency=WORKERS,
            watcher=watcher,
            timeout=120 + 6 * load_estimate_s,
            # A cold run loads the corpus first: allow a few loads' time before calling it stuck.
            stall_s=max(STALL_SECONDS, 3 * load_estimate_s),
            diagnose=lambda: stall_diagnosis(watcher=watcher, children=children),
            until=warm_enough,
            progress=lambda done, total, s: log(f"  warm-up: {done} runs finished after {s:.0f}s"),
        )
        if warm.timed_out or not warm_enough(warm.results):
            tails = "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in workers)
            per_owner: dict[str, int] = {}
            for r in warm.results:
                key = f"{r.owner or '?'}:{r.status}"
                per_owner[key] = per_owner.get(key, 0) + 1
            raise BenchError(f"workers did not both warm up ({len(warm.results)} runs finished: {per_owner})\n{tails}")
        firsts: dict[str, RunResult] = {}
        for r in sorted(warm.results, key=lambda r: r.pk):
            firsts.setdefault(process_of(r.owner), r)
        report.cold = [(o, r.duration_ms or 0, r.processing_ms or math.nan) for o, r in firsts.items()]
        cold_txt = ", ".join(f"{d:,} ms (processing {p:,.0f} ms)" for _, d, p in report.cold)
        log(f"ours: warm after {len(warm.results)} runs; first run per worker (cold, loads the corpus): {cold_txt}")

        log(f"ours: measuring {args.runs} warm runs, {args.concurrency} in flight (closed loop, HTTP submit)")
        loop = closed_loop(
            submit=submit,
            urls=url_cycle(urls, start=0),
            total=args.runs,
            concurrency=args.concurrency,
            watcher=watcher,
            timeout=args.ours_timeout,
            diagnose=lambda: stall_diagnosis(watcher=watcher, children=children),
            progress=lambda done, total, s: log(f"  ours: {done}/{total} runs, {done / s:.1f} runs/s"),
        )
        owners: dict[str, int] = {}
        for r in loop.results:
            owners[process_of(r.owner)] = owners.get(process_of(r.owner), 0) + 1
        split = " / ".join(str(n) for n in sorted(owners.values(), reverse=True))
        report.systems["ours"] = SystemResult("ours", loop, detail=f"runs per worker {split}")
        report.stages = stage_breakdown(dsn=watcher.dsn, results=loop.results)
        single_results: list[RunResult] = []
        if args.single_runs > 0:
            log(f"ours: {args.single_runs} more runs with 1 in flight (no queueing behind other runs)")
            single = closed_loop(
                submit=submit,
                urls=url_cycle(urls, start=args.runs),
                total=args.single_runs,
                concurrency=1,
                watcher=watcher,
                timeout=args.ours_timeout / 2,
                diagnose=lambda: stall_diagnosis(watcher=watcher, children=children),
            )
            report.systems["ours-1"] = SystemResult("ours-1", single)
            single_results = single.results
        ids_per_process: dict[str, set[str]] = {}
        for r in [*warm.results, *loop.results, *single_results]:
            ids_per_process.setdefault(process_of(r.owner), set()).add(r.owner)
        doubled = {p: sorted(ids) for p, ids in ids_per_process.items() if len(ids) > 1}
        if doubled:
            report.notes.append(
                f"lease owners: worker process(es) {', '.join(doubled)} claimed under more than one worker id"
                f" ({doubled}); ops.worker.worker_id() races with the heartbeat thread"
            )
        report.client_ms = np.array([r.client_ms for r in loop.results if r.status == "ready"])
        report.submit_ms = np.array([r.submit_ms for r in loop.results if r.status == "ready"])
        log(
            f"ours: {len(loop.results)} runs in {loop.wall_s:.1f}s"
            + (" (TIMED OUT)" if loop.timed_out else "")
            + f"; runs per worker {split}"
        )
    finally:
        for child in [server, *workers]:
            child.stop()
            children.remove(child)


def _django_connection_close() -> None:
    from django.db import connection

    connection.close()


def phase_alt(
    *,
    mode: str,
    runs: int,
    args: argparse.Namespace,
    report: SizeReport,
    env: dict[str, str],
    urls: Sequence[str],
    watcher: Watcher,
    children: list[Child],
    logdir: Path,
) -> None:
    from bench.runs_support.driver import service_submitter

    procs = [
        Child(
            f"{mode}-{report.size}-{i}",
            [sys.executable, "-m", "bench.runs_support.alt_worker", mode],
            logdir / f"{mode}-{report.size}-{i}.log",
        )
        for i in range(WORKERS)
    ]
    try:
        for proc in procs:
            children.append(proc.start(env=env, cwd=ROOT, stdout_pipe=True))
        for proc in procs:
            proc.wait_line("READY", timeout=60)
        log(f"{mode}: {WORKERS} worker processes ready; {runs} runs, {args.concurrency} in flight")
        loop = closed_loop(
            submit=service_submitter(),
            urls=url_cycle(urls, start=0),
            total=runs,
            concurrency=args.concurrency,
            watcher=watcher,
            timeout=args.alt_timeout,
            diagnose=lambda: stall_diagnosis(watcher=watcher, children=children),
            progress=lambda done, total, s: log(f"  {mode}: {done}/{total} runs after {s:.0f}s"),
            progress_every_s=15.0,
            thread_exit=_django_connection_close,
        )
        report.systems[mode] = SystemResult(mode, loop)
        log(f"{mode}: {len(loop.results)} runs in {loop.wall_s:.1f}s" + (" (TIMED OUT)" if loop.timed_out else ""))
    finally:
        for proc in procs:
            proc.stop()
            children.remove(proc)


# -- checks -----------------------------------------------------------------------------
def top_lists(pks: Sequence[int], k: int = 10) -> dict[int, tuple[list[int], list[float], int]]:
    """run pk -> (top-k investor ids by rank, their scores, how many matches are stored)."""
    from django.db import connection

    if not pks:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT run_id,
                   array_agg(investor_id ORDER BY rank) FILTER (WHERE rank <= %s),
                   array_agg(score ORDER BY rank) FILTER (WHERE rank <= %s),
                   count(*)
            FROM runs_startupinvestormatch WHERE run_id = ANY(%s) GROUP BY run_id
            """,
            [k, k, list(pks)],
        )
        return {row[0]: (list(row[1] or []), list(row[2] or []), int(row[3])) for row in cursor.fetchall()}


def checks_run(report: SizeReport) -> None:
    from django.conf import settings

    k = settings.RUNS_TOP_K
    tops: dict[str, dict[int, tuple[list[int], list[float], int]]] = {}
    for name, system in report.systems.items():
        results = system.loop.results
        bad = [r for r in results if r.status != "ready" or r.match_count != k]
        tops[name] = top_lists([r.pk for r in results])
        short = [r for r in results if tops[name].get(r.pk, ([], [], 0))[2] != k]
        ok = not bad and not short and not system.loop.timed_out and not system.loop.submit_errors and results
        report.checks.append(
            (
                f"{name}: every measured run ready with match_count == RUNS_TOP_K ({k}) rows stored",
                bool(ok),
                f"{len(results)} runs, {len(bad)} not ready/short count, {len(short)} without {k} stored rows"
                + (f", {len(system.loop.submit_errors)} submit errors" if system.loop.submit_errors else "")
                + (", timed out" if system.loop.timed_out else ""),
            )
        )
    if "ours" not in report.systems:
        return
    ours_by_startup: dict[int, int] = {}
    for r in report.systems["ours"].loop.results:
        if r.startup_id is not None and r.status == "ready":
            ours_by_startup.setdefault(r.startup_id, r.pk)
    for alt in ("sql", "reload"):
        if alt not in report.systems:
            continue
        exact = tolerant = compared = 0
        max_diff = 0.0
        for r in report.systems[alt].loop.results:
            if r.status != "ready" or r.startup_id not in ours_by_startup:
                continue
            ours_pk = ours_by_startup[r.startup_id]
            ids_a, scores_a, _ = tops["ours"].get(ours_pk, ([], [], 0))
            ids_b, scores_b, _ = tops[alt].get(r.pk, ([], [], 0))
            compared += 1
            if ids_a == ids_b:
                exact += 1
            if len(scores_a) == len(scores_b) and scores_a:
                diff = max(abs(a - b) for a, b in zip(scores_a, scores_b, strict=True))
                max_diff = max(max_diff, diff)
                # Tolerant: same score profile; any id difference only among ties at the cut.
                cut = scores_a[-1]
                if diff <= 1e-5 and {i for i, s in zip(ids_a, scores_a, strict=True) if s > cut + 1e-5} == {
                    i for i, s in zip(ids_b, scores_b, strict=True) if s > cut + 1e-5
                }:
                    tolerant += 1
        report.checks.append(
            (
                f"ours vs {alt}: same top-10 investor ids for the same startup",
                compared > 0 and exact == compared,
                f"{exact}/{compared} identical in order (tolerant: {tolerant}/{compared}); "
                f"max |score diff| {max_diff:.2g}",
            )
        )


# -- output -----------------------------------------------------------------------------
def table_print(report: SizeReport) -> None:
    ours = report.systems.get("ours")
    header = (
        f"{'system':<18} | {'runs':>5} | {'p50 ms':>8} | {'p95 ms':>8} | {'p99.9 ms':>8} | {'runs/s':>7} |"
        f" {'ours ÷ alt: p50':>15} | {'throughput':>10}"
    )
    print()
    print(f"== {report.size:,} investors ==")
    if report.load_line:
        print(report.load_line)
    if report.cold:
        cold = "; ".join(f"{d:,} ms submit->ready (processing {p:,.0f} ms)" for _, d, p in report.cold)
        print(f"cold (first run of each worker, loads the corpus): {cold}")
    print(header)
    print("-" * len(header))
    for name in ("ours", "ours-1", "reload", "sql"):
        s = report.systems.get(name)
        if s is None:
            continue
        if name.startswith("ours") or ours is None:
            p50_ratio, rps_ratio = "", ""
        else:
            p50_ratio = fmt_x(s.p50 / ours.p50) if ours.p50 > 0 else "-"
            rps_ratio = fmt_x(ours.rps / s.rps) if s.rps > 0 else "-"
        label = {
            "ours": f"ours ({report.concurrency} in flight)",
            "ours-1": "ours (1 in flight)",
            "reload": "reload",
            "sql": "sql",
        }[name]
        print(
            f"{label:<18} | {s.n:>5} | {fmt_ms(s.p50):>8} | {fmt_ms(s.p95):>8} | {fmt_ms(s.p999):>8} |"
            f" {s.rps:>7.2f} | {p50_ratio:>15} | {rps_ratio:>10}"
        )
    if ours is not None and ours.n:
        d = ours.loop.durations
        print(
            f"ours: {ours.n} warm runs (p99.9 of n={ours.n} is "
            + ("the maximum" if ours.n < 1000 else f"between the {ours.n - 1}th and {ours.n}th of the sorted sample")
            + f"); mean {d.mean():,.1f} ms, max {d.max():,.0f} ms; {ours.detail}"
        )
        c, post = report.client_ms, report.submit_ms
        if c.size:
            print(
                "ours, seen by the client (HTTP POST start -> a 4 ms poll sees ready):"
                f" p50 {pct(c, 50):,.1f} ms, p95 {pct(c, 95):,.1f} ms, p99.9 {pct(c, 99.9):,.0f} ms;"
                f" the POST alone p50 {pct(post, 50):,.1f} ms, p95 {pct(post, 95):,.1f} ms"
            )
    print("ratios: ours ÷ alt is how many times ours is better (alt p50 / ours p50; ours runs/s / alt runs/s)")
    if report.stages:
        print("ours, where the time goes (medians / p95, ms; DB and bench share the host clock):")
        for label, p50, p95 in report.stages:
            print(f"    {label:<64} {p50:8.1f} / {p95:8.1f}")
    for note in report.notes:
        print(f"  note: {note}")
    for label, ok, detail in report.checks:
        print(f"  check {'ok  ' if ok else 'FAIL'} {label}: {detail}")


def verdict_print(reports: list[SizeReport], *, quick: bool) -> bool:
    print()
    target = next((r for r in reports if r.size == TARGET_SIZE), None)
    if quick:
        target = reports[-1] if reports else None
    if target is None:
        print(f"targets apply at {TARGET_SIZE:,} investors, which this run did not include: no verdict")
        checks_ok = all(ok for r in reports for _, ok, _ in r.checks)
        return verdict(checks_ok, "correctness checks at every size (ready, RUNS_TOP_K rows, same top-10 as SQL)")
    ours = target.systems.get("ours")
    reload = target.systems.get("reload")
    gating: list[bool] = []
    print(f"== targets at {target.size:,} investors ==")
    if ours is None or not ours.n:
        gating.append(verdict(False, f"ours produced no measured runs at {target.size:,}"))
    else:
        gating.append(
            verdict(ours.p50 <= TARGET_P50_MS, f"warm p50 {ours.p50:,.1f} ms <= {TARGET_P50_MS:,.0f} ms", quick=quick)
        )
        gating.append(
            verdict(
                ours.p999 <= TARGET_P999_MS,
                f"warm p99.9 {ours.p999:,.0f} ms <= {TARGET_P999_MS:,.0f} ms (n={ours.n})",
                quick=quick,
            )
        )
        if reload is None or not reload.n:
            gating.append(verdict(False, "no reload alternative measured"))
        else:
            rps_ratio = ours.rps / reload.rps if reload.rps else math.inf
            p50_ratio = reload.p50 / ours.p50 if ours.p50 else math.inf
            gating.append(
                verdict(
                    rps_ratio >= TARGET_RELOAD_RATIO,
                    f"throughput {ours.rps:,.2f} vs {reload.rps:,.2f} runs/s = {rps_ratio:,.1f}x the reload"
                    f" alternative >= {TARGET_RELOAD_RATIO:.0f}x",
                    quick=quick,
                )
            )
            gating.append(
                verdict(
                    p50_ratio >= TARGET_RELOAD_RATIO,
                    f"p50 {reload.p50:,.0f} vs {ours.p50:,.1f} ms = {p50_ratio:,.1f}x faster than the reload"
                    f" alternative >= {TARGET_RELOAD_RATIO:.0f}x",
                    quick=quick,
                )
            )
    checks_ok = all(ok for r in reports for _, ok, _ in r.checks)
    gating.append(verdict(checks_ok, "correctness checks (ready, RUNS_TOP_K rows, same top-10 as SQL)"))
    return all(gating)


# -- main -------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="corpus sizes, ascending (default 100000,1000000)")
    parser.add_argument("--runs", type=int, default=1500, help="warm runs measured for ours per size (default 1500)")
    parser.add_argument("--reload-runs", type=int, default=12, help="runs for the reload alternative (default 12)")
    parser.add_argument("--sql-runs", type=int, default=40, help="runs for the SQL alternative (default 40)")
    parser.add_argument("--concurrency", type=int, default=4, help="runs kept in flight (default 4)")
    parser.add_argument("--single-runs", type=int, default=200, help="extra ours runs with 1 in flight (default 200)")
    parser.add_argument("--warm-runs", type=int, default=5, help="warm-up runs per worker after its cold run")
    parser.add_argument("--startups", type=int, default=1000, help="demo startups to cycle through (default 1000)")
    parser.add_argument("--claim-batch", type=int, default=None, help="RUNS_CLAIM_BATCH for the workers")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help=f"Celery broker (default {DEFAULT_REDIS_URL})")
    parser.add_argument("--ours-timeout", type=float, default=300.0, help="seconds for ours' measured runs per size")
    parser.add_argument("--alt-timeout", type=float, default=180.0, help="seconds per alternative per size")
    parser.add_argument("--no-diagnostics", action="store_true", help="skip timing corpus_load in the bench process")
    parser.add_argument("--max-seconds", type=float, default=1800, help="hard bound on the whole bench (default 1800)")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database at the end (debugging)")
    quick = {
        "sizes": "2000,4000",  # two sizes: the corpus grows between them, and the all-sizes table
        "runs": 16,
        "single_runs": 4,
        "reload_runs": 4,
        "sql_runs": 4,
        "startups": 40,
        "warm_runs": 1,
        "ours_timeout": 60.0,
        "alt_timeout": 60.0,
        "max_seconds": 300,
    }
    args = quick_parse(parser, argv, quick)
    args.size_list = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if not args.size_list or min(args.size_list) <= 0:
        parser.error("--sizes needs positive integers")
    if args.concurrency < 1 or args.runs < 1:
        parser.error("--concurrency and --runs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    db = bench_database(base_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, suffix=SUFFIX)
    redis_check(args.redis_url)
    env = child_env(db=db, redis_url=args.redis_url, claim_batch=args.claim_batch)
    children: list[Child] = []
    logdir = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    watcher: Watcher | None = None
    reports: list[SizeReport] = []
    passed = False

    def cleanup() -> None:
        for child in list(children):
            child.stop(grace=5)
        if watcher is not None:
            with contextlib.suppress(Exception):
                watcher.close()
        with contextlib.suppress(Exception):
            redis_flush(args.redis_url)
        log(f"Redis db flushed; logs in {logdir}")

    with bench_frame(db=db, keep=args.keep_db, max_seconds=args.max_seconds, cleanup=cleanup, stop_errors=(Stalled,)):
        log(f"bench database {db.name} (drop + create), Redis {args.redis_url} (FLUSHDB), logs in {logdir}")
        database_recreate(db)
        django_setup(env)
        from django.conf import settings

        from runs.demo import demo_startup_url, startups_seed

        database_migrate()
        redis_flush(args.redis_url)
        # The alternatives are submitted in this process: no Celery wake-up for them.
        settings.OPS_WAKE_WORKERS = False
        startups_seed(count=args.startups)
        urls = [demo_startup_url(i) for i in range(1, args.startups + 1)]
        watcher = Watcher(db.dsn)
        pg_version, sync_commit = watcher.conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit')"
        ).fetchone() or ("?", "?")
        loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
        log(f"PostgreSQL {pg_version} (synchronous_commit={sync_commit}), load average {loadavg}")
        log(
            f"migrated; {args.startups} startups; python {platform.python_version()}, {os.cpu_count()} cpus;"
            f" RUNS_TOP_K={settings.RUNS_TOP_K},"
            f" RUNS_CLAIM_BATCH={env.get('RUNS_CLAIM_BATCH', settings.RUNS_CLAIM_BATCH)},"
            f" {WORKERS} workers, {args.concurrency} runs in flight"
        )
        for size in args.size_list:
            log(f"=== {size:,} investors ===")
            added, seed_s = investors_grow(target=size)
            log(f"seeded {added:,} investors in {seed_s:.1f}s ({added / max(seed_s, 1e-9):,.0f}/s); ANALYZEd")
            report = SizeReport(size=size, seed_s=seed_s, concurrency=args.concurrency)
            reports.append(report)
            load_estimate = size / 200_000  # seconds, refined by the diagnostics
            if not args.no_diagnostics:
                from bench.runs_support.loaders import corpus_load_timings

                t = corpus_load_timings()
                load_estimate = t.corpus_load_s
                report.load_line = (
                    f"corpus_load() in one idle process: {t.corpus_load_s:.2f}s (its query + fetchall alone"
                    f" {t.fetchall_s:.2f}s); column-wise binary prototype {t.columns_s:.2f}s"
                    f" ({t.corpus_load_s / max(t.columns_s, 1e-9):.1f}x faster, same arrays: {t.same_arrays})"
                )
                log(report.load_line)
            phase_ours(
                args=args,
                report=report,
                env=env,
                urls=urls,
                watcher=watcher,
                children=children,
                logdir=logdir,
                load_estimate_s=load_estimate,
            )
            for mode, runs in (("reload", args.reload_runs), ("sql", args.sql_runs)):
                if runs > 0:
                    phase_alt(
                        mode=mode,
                        runs=runs,
                        args=args,
                        report=report,
                        env=env,
                        urls=urls,
                        watcher=watcher,
                        children=children,
                        logdir=logdir,
                    )
            checks_run(report)
            table_print(report)
        print()
        print(
            "load: closed loop, "
            f"{args.concurrency} runs in flight; ours submitted by HTTP POST /api/match/run (gunicorn, gthread)"
            " and woken through Celery/Redis; the alternatives submitted with runs.services.match_run_submit and polled"
            " from the queue every 5 ms. Latency = MatchRun.duration_ms (DB clock, submit -> ack)."
        )
        if len(reports) > 1:
            print("\n=================== all sizes ===================")
            for report in reports:
                table_print(report)
        passed = verdict_print(reports, quick=args.quick)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
