"""The proposals loop at 100k members: refill from empty, and finalization lag, ours vs naive.

One command:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/matchplatform .venv/bin/python -m bench.proposals
    make bench-proposals
    .venv/bin/python -m bench.proposals --quick   # tiny sizes, seconds, no targets (make test runs it)

The bench never touches the database named by ``DATABASE_URL``: it drops and recreates its
own ``<name>_bench_proposals`` next to it, migrates it, and drops it at the end. Loopback
only; no Redis, no Celery (the services are called directly, as beat's tick calls them).

1. Refill from empty, for the default scale and each preset of
   ``PROPOSALS_SCALE_PRESETS``: ``proposal_queue_refill()`` from an empty queue to its high
   mark, then ``proposals_open()`` from no voting proposal to the voting high mark, repeated
   (``--reps``) on a cleaned slate; the naive version (random pairs one at a time, a query
   per duplicate/busy check, one INSERT per row; voters ordered by a COUNT subquery, one
   query per proposal) in the same run. Invariants checked after every fill.
2. Finalization lag: ``--final-count`` voting proposals (random votes) whose deadlines all
   fall at one instant; two processes loop ``proposals_finalize_due()`` every 0.5 s; the
   production cadence (the real finalize task, one beat message every 2 s taken by whichever of
   two processes is free, a tick landing just before the deadline); and a naive finalizer in
   one process. Lag per proposal = (first seen finalized | finalized_at) - deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.db import BenchDatabase, bench_database, database_migrate, database_recreate, one
from bench.common.env import DEFAULT_DATABASE_URL, ROOT, bench_env, django_setup, quick_parse
from bench.common.frame import bench_frame
from bench.common.procs import Child
from bench.common.report import fmt_x, log, pct, verdict

SUFFIX = "_bench_proposals"
TARGET_REFILL_S = 1.0
TARGET_LAG_P99_S = 3.0
TICK_LEAD_S = 0.2  # in the production-cadence run, a tick starts this long before the deadline


def fmt_s(value: float, *, estimated: bool = False) -> str:
    if math.isnan(value):
        return "-"
    text = f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"
    return f"~{text}" if estimated else text


def fmt_lag(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.2f}"


def peak_rss_reset() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so the next read is this section's peak."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


# -- part 1 -----------------------------------------------------------------------------
@dataclass
class Scale:
    name: str
    queue_low: int
    queue_high: int
    voting_low: int
    voting_high: int
    is_default: bool = False


@dataclass
class ScaleReport:
    scale: Scale
    ours: list[Any] = field(default_factory=list)  # FillResult per rep
    naive: list[Any] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    peak_mb: float = math.nan
    prototype: str = ""

    def ours_total(self) -> list[float]:
        return [r.refill_s + r.open_s for r in self.ours]


def scales_list(names: Sequence[str]) -> list[Scale]:
    from django.conf import settings

    default = Scale(
        "default",
        settings.PROPOSALS_QUEUE_LOW,
        settings.PROPOSALS_QUEUE_HIGH,
        settings.PROPOSALS_VOTING_LOW,
        settings.PROPOSALS_VOTING_HIGH,
        is_default=True,
    )
    out: list[Scale] = []
    for name in names:
        if name == "default":
            continue
        q_low, v_low = settings.PROPOSALS_SCALE_PRESETS[name]
        scale = Scale(name, q_low, q_low * 3 // 2, v_low, v_low * 6 // 5)
        marks = (scale.queue_low, scale.queue_high, scale.voting_low, scale.voting_high)
        if "default" in names and marks == (
            default.queue_low,
            default.queue_high,
            default.voting_low,
            default.voting_high,
        ):
            scale.is_default = True
            scale.name = f"{name} (default)"
        out.append(scale)
    if "default" in names and not any(s.is_default for s in out):
        default.name = f"default ({settings.PROPOSALS_SCALE}, env marks)"
        out.insert(0, default)
    return out


def part_refill(*, args: argparse.Namespace, scale: Scale) -> ScaleReport:
    from django.conf import settings

    from bench.proposals_support.fastpairs import pairs_best_prefix
    from bench.proposals_support.refill import PairsBestSpy, naive_fill, ours_fill
    from bench.proposals_support.state import checks_open_state, scale_applied, state_reset

    report = ScaleReport(scale)
    n_voters = settings.PROPOSALS_VOTERS_PER_PROPOSAL
    spy = PairsBestSpy()
    with (
        spy,
        scale_applied(
            queue_low=scale.queue_low,
            queue_high=scale.queue_high,
            voting_low=scale.voting_low,
            voting_high=scale.voting_high,
        ),
    ):
        started = time.monotonic()
        peak_rss_reset()
        for rep in range(args.reps):
            state_reset(vacuum=True)
            result = ours_fill(spy=spy)
            report.ours.append(result)
            log(
                f"  {scale.name} ours #{rep + 1}: refill {fmt_s(result.refill_s)} ({result.refill_calls} call(s),"
                f" {result.refill_queries} queries taking {fmt_s(result.refill_db_s)}, pairs_best"
                f" {fmt_s(result.pairs_best_s)} on a pool of {result.pool:,}) -> {result.queued} queued;"
                f" open {fmt_s(result.open_s)} ({result.open_queries} queries taking {fmt_s(result.open_db_s)})"
                f" -> {result.voting} voting"
            )
            checks = checks_open_state(voters_per_proposal=n_voters, load_counter=True)
            checks.append(
                (
                    "queue reached its high mark, voting set its high mark",
                    result.queued == scale.queue_high and result.voting == scale.voting_high,
                    f"{result.queued}/{scale.queue_high} queued after refill, {result.voting}/{scale.voting_high}"
                    " voting after open",
                )
            )
            report.checks += [(f"ours #{rep + 1}: {label}", ok, detail) for label, ok, detail in checks]
            spent = time.monotonic() - started
            if rep + 1 >= args.min_reps and spent > args.scale_budget:
                log(f"  {scale.name}: {spent:.0f}s spent, stopping after {rep + 1} reps (--scale-budget)")
                break
        report.peak_mb = peak_rss_mb()
        if spy.calls:
            call = max(spy.calls, key=lambda c: c.pool)
            t0 = time.perf_counter()
            fast = pairs_best_prefix(**call.args)
            fast_s = time.perf_counter() - t0
            # Not a check: production pairs within chunks of the pool, which picks different
            # (as compatible on average) pairs than this exact whole-pool greedy reference.
            mean_ours = sum(p[2] for p in call.result) / max(len(call.result), 1)
            mean_ref = sum(p[2] for p in fast) / max(len(fast), 1)
            report.prototype = (
                f"pairs_best on a pool of {call.pool:,} (limit {call.limit:,}): {fmt_s(call.seconds)} in the refill"
                f" (mean compatibility {mean_ours:.3f}); whole-pool exact greedy reference"
                f" bench/proposals_support/fastpairs.py on the same inputs {fmt_s(fast_s)} (mean {mean_ref:.3f})"
            )
        if not args.skip_naive:
            for rep in range(args.naive_reps):
                state_reset(vacuum=True)
                naive = naive_fill(rng=random.Random(args.seed + rep), budget_s=args.naive_budget)
                report.naive.append(naive)
                log(
                    f"  {scale.name} naive #{rep + 1}: refill {fmt_s(naive.refill_s, estimated=naive.refill_estimated)}"
                    f" ({naive.refill_queries} queries) -> {naive.queued} queued; open"
                    f" {fmt_s(naive.open_s, estimated=naive.open_estimated)} ({naive.open_queries} queries)"
                    f" -> {naive.voting} voting" + ("" if naive.complete else " (budget ran out: estimated)")
                )
                checks = checks_open_state(voters_per_proposal=n_voters, load_counter=False)
                report.checks += [(f"naive #{rep + 1}: {label}", ok, detail) for label, ok, detail in checks]
        state_reset(vacuum=True)
    return report


def table_refill(reports: list[ScaleReport], *, members: int) -> None:
    print()
    print(f"== part 1: refill from empty, {members:,} members (p50 / max over reps; naive: one run) ==")
    header = (
        f"{'scale':<16} | {'queue hi':>8} | {'voting hi':>9} | {'reps':>4} | {'step':<7} | {'ours p50':>9} |"
        f" {'ours max':>9} | {'queries':>7} | {'naive':>10} | {'queries':>7} | {'naive÷ours':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in reports:
        s = r.scale
        naive = r.naive[0] if r.naive else None
        for step in ("queue", "voting", "both"):
            if step == "queue":
                ours_v = [x.refill_s for x in r.ours]
                ours_q = r.ours[0].refill_queries if r.ours else 0
                naive_v = naive.refill_s if naive else math.nan
                naive_q = naive.refill_queries if naive else 0
                est = bool(naive and naive.refill_estimated)
            elif step == "voting":
                ours_v = [x.open_s for x in r.ours]
                ours_q = r.ours[0].open_queries if r.ours else 0
                naive_v = naive.open_s if naive else math.nan
                naive_q = naive.open_queries if naive else 0
                est = bool(naive and naive.open_estimated)
            else:
                ours_v = r.ours_total()
                ours_q = (r.ours[0].refill_queries + r.ours[0].open_queries) if r.ours else 0
                naive_v = (naive.refill_s + naive.open_s) if naive else math.nan
                naive_q = (naive.refill_queries + naive.open_queries) if naive else 0
                est = bool(naive and (naive.refill_estimated or naive.open_estimated))
            p50 = pct(ours_v, 50)
            ratio = naive_v / p50 if p50 > 0 else math.nan
            first = step == "queue"
            print(
                f"{(s.name if first else ''):<16} | {(f'{s.queue_high:,}' if first else ''):>8} |"
                f" {(f'{s.voting_high:,}' if first else ''):>9} | {(str(len(r.ours)) if first else ''):>4} |"
                f" {step:<7} | {fmt_s(p50):>9} | {fmt_s(max(ours_v, default=math.nan)):>9} | {ours_q:>7,} |"
                f" {fmt_s(naive_v, estimated=est):>10} | {(f'{naive_q:,}' if naive else '-'):>7} | {fmt_x(ratio):>10}"
            )
    print(
        "queue = proposal_queue_refill() from 0 queued to the queue high mark; voting = proposals_open() from 0"
        " voting to the voting high mark (10 least-loaded voters each); both = the sum. '~' = the naive step ran"
        " out of --naive-budget and was scaled linearly from the rows it did. naive÷ours = naive / ours p50."
    )
    for r in reports:
        naive = r.naive[0] if r.naive else None
        compat = f"mean compatibility of the open pairs: ours {r.ours[0].mean_compat:.3f}" if r.ours else ""
        if naive:
            compat += f", naive {naive.mean_compat:.3f}"
        print(f"  {r.scale.name}: {compat}; peak RSS of the bench process during ours {r.peak_mb:,.0f} MB")
        if r.prototype:
            print(f"    {r.prototype}")
        bad = [c for c in r.checks if not c[1]]
        print(
            f"    checks: {len(r.checks) - len(bad)}/{len(r.checks)} ok"
            + "".join(f"\n    check FAIL {label}: {detail}" for label, _, detail in bad)
        )


# -- part 2 -----------------------------------------------------------------------------
@dataclass
class Variant:
    key: str
    label: str
    task: str
    mode: str
    procs: int
    period: float


@dataclass
class FinalReport:
    variant: Variant
    stamped: np.ndarray
    visible: np.ndarray
    statement: np.ndarray
    checks: list[tuple[str, bool, str]]
    calls: Any
    approved: int
    n: int
    deadline: float
    note: str = ""


def part_finalize(
    *,
    args: argparse.Namespace,
    variant: Variant,
    scenario: Any,
    db: BenchDatabase,
    env: dict[str, str],
    logdir: Path,
) -> FinalReport:
    from bench.proposals_support.finalize import (
        calls_read,
        deadlines_set,
        lags_and_checks,
        poll_until_final,
        scenario_restore,
    )

    scenario_restore()
    deadline = deadlines_set(ids=scenario.ids, lead_s=args.lead)
    # beat: a tick lands TICK_LEAD_S before the deadline; loop: start at once.
    first_at = deadline - TICK_LEAD_S - variant.period if variant.mode == "beat" else time.time()
    until = deadline + 2 * variant.period + args.final_timeout
    claim_dir = logdir / f"claims-{variant.key}"
    claim_dir.mkdir(exist_ok=True)
    outs = [logdir / f"calls-{variant.key}-{i}.jsonl" for i in range(variant.procs)]
    children = [
        Child(
            f"finalizer-{variant.key}-{i}",
            [
                sys.executable,
                "-m",
                "bench.proposals_support.finalizer",
                f"--task={variant.task}",
                f"--mode={variant.mode}",
                f"--period={variant.period}",
                f"--first-at={first_at}",
                f"--until={until}",
                f"--out={outs[i]}",
                f"--claim-dir={claim_dir}",
            ],
            logdir / f"finalizer-{variant.key}-{i}.log",
        )
        for i in range(variant.procs)
    ]
    note = ""
    try:
        for child in children:
            child.start(env=env, cwd=ROOT, stdout_pipe=True)
        for child in children:
            child.wait_line("READY", timeout=max(deadline - time.time(), 5))
        slack = deadline - time.time()
        if slack < 0.5:
            note = f"finalizers were ready only {slack:.1f}s before the deadline (raise --lead)"
        log(f"  {variant.label}: {variant.procs} finalizer process(es) ready {slack:.1f}s before the deadline")
        seen = poll_until_final(dsn=db.dsn, ids=scenario.ids, until=until)
        log(
            f"  {variant.label}: all finalized {max(seen.at.values(), default=deadline) - deadline:.2f}s after the"
            f" deadline ({seen.polls} polls)" + (" - TIMED OUT" if seen.timed_out else "")
        )
    finally:
        for child in children:
            child.stop(grace=15)
    calls = calls_read(outs)
    lags, checks = lags_and_checks(scenario=scenario, deadline=deadline, seen=seen, calls=calls)
    return FinalReport(
        variant=variant,
        stamped=lags.stamped,
        visible=lags.visible,
        statement=lags.statement,
        checks=checks,
        calls=calls,
        approved=len(scenario.approved_expected),
        n=len(scenario.ids),
        deadline=deadline,
        note=note,
    )


def table_finalize(reports: list[FinalReport]) -> None:
    print()
    n = reports[0].n if reports else 0
    print(f"== part 2: finalization lag, {n:,} proposals whose deadlines fall at one instant (seconds) ==")
    header = (
        f"{'finalizer':<34} | {'procs':>5} | {'every':>6} | {'p50':>6} | {'p95':>6} | {'p99':>6} | {'max':>6} |"
        f" {'p99 by finalized_at':>19} | {'calls':>5} | {'busy s':>6} | {'ms/proposal':>11}"
    )
    print(header)
    print("-" * len(header))
    by_key = {r.variant.key: r for r in reports}
    for r in reports:
        v = r.visible
        busy = sum(r.calls.busy_s)
        worst = float(v.max()) if v.size else math.nan
        print(
            f"{r.variant.label:<34} | {r.variant.procs:>5} | {r.variant.period:>5.1f}s | {fmt_lag(pct(v, 50)):>6} |"
            f" {fmt_lag(pct(v, 95)):>6} | {fmt_lag(pct(v, 99)):>6} | {fmt_lag(worst):>6} |"
            f" {fmt_lag(pct(r.stamped, 99)):>19} | {r.calls.n:>5} | {busy:>6.2f} | {busy * 1000 / max(r.n, 1):>11.1f}"
        )
    print(
        "lag = first seen finalized by a 50 ms poller (committed; the database's clock) - deadline. 'p99 by"
        " finalized_at' = finalized_at - deadline (statement_timestamp(), so before the commit). busy s = summed"
        " duration of the finalizer calls that finalized something; ms/proposal = busy s / N (CPU of all processes)."
    )
    for slow, fast, what in (
        ("naive", "ours", "naive ÷ ours, both every 0.5 s"),
        ("tick", "setbased", "ours (real tick) ÷ set-based prototype, both at beat cadence"),
    ):
        a, b = by_key.get(slow), by_key.get(fast)
        if a is not None and b is not None and a.visible.size and b.visible.size:
            print(
                f"{what}: p99 {fmt_x(pct(a.visible, 99) / max(pct(b.visible, 99), 1e-9))},"
                f" p50 {fmt_x(pct(a.visible, 50) / max(pct(b.visible, 50), 1e-9))},"
                f" busy time {fmt_x(sum(a.calls.busy_s) / max(sum(b.calls.busy_s), 1e-9))}"
            )
    for r in reports:
        s = r.statement
        split = " / ".join(str(x) for x in r.calls.per_process)
        starts = ", ".join(f"{t - r.deadline:+.2f}" for t in sorted(r.calls.busy_start)[:4])
        print(
            f"  {r.variant.label}: {r.approved} approved / {r.n - r.approved} rejected; finalized per process {split};"
            f" the calls that finalized started at deadline {starts} s;"
            f" status UPDATE clock - deadline p50 {fmt_lag(pct(s, 50))} p99 {fmt_lag(pct(s, 99))};"
            f" finalized_at - deadline p50 {fmt_lag(pct(r.stamped, 50))}"
        )
        if r.note:
            print(f"    note: {r.note}")
        bad = [c for c in r.checks if not c[1]]
        print(
            f"    checks: {len(r.checks) - len(bad)}/{len(r.checks)} ok"
            + "".join(f"\n    check FAIL {label}: {detail}" for label, _, detail in bad)
        )


# -- verdict ----------------------------------------------------------------------------
def verdict_print(refills: list[ScaleReport], finals: list[FinalReport], *, members: int, quick: bool) -> bool:
    print()
    print(f"== targets ({members:,} members) ==")
    gating: list[bool] = []
    for r in refills:
        if not r.ours:
            continue
        total = pct(r.ours_total(), 50)
        queue = pct([x.refill_s for x in r.ours], 50)
        ok = verdict(
            total <= TARGET_REFILL_S,
            f"refill from empty at scale {r.scale.name}: queue + voting set p50 {fmt_s(total)} (queue {fmt_s(queue)},"
            f" max {fmt_s(max(r.ours_total()))}) <= {TARGET_REFILL_S:.0f} s",
            quick=quick,
        )
        gating.append(ok)
    for final in finals:
        if final.variant.key == "naive":
            continue
        p99 = pct(final.visible, 99)
        tag = "  (prototype, not gating)" if final.variant.key == "setbased" else ""
        ok = verdict(
            p99 <= TARGET_LAG_P99_S,
            f"finalization lag p99 {fmt_lag(p99)} s <= {TARGET_LAG_P99_S:.0f} s"
            f" ({final.variant.label}; by finalized_at {fmt_lag(pct(final.stamped, 99))} s){tag}",
            quick=quick,
        )
        every = final.visible.size == final.n
        if not every:
            verdict(False, f"{final.variant.label}: {final.visible.size} of {final.n} proposals seen finalized{tag}")
        if not tag:
            gating += [ok, every]
    checks = [c for r in refills for c in r.checks] + [
        c for r in finals if r.variant.key != "setbased" for c in r.checks
    ]
    failed = [c for c in checks if not c[1]]
    gating.append(verdict(not failed, f"correctness checks: {len(checks) - len(failed)}/{len(checks)} ok"))
    return bool(gating) and all(gating)


# -- main -------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000, help="members seeded (default 100000)")
    parser.add_argument("--scales", default="default,small,medium,large", help="scales for part 1")
    parser.add_argument("--reps", type=int, default=5, help="ours fills per scale (default 5)")
    parser.add_argument("--min-reps", type=int, default=1, help="ours fills per scale at least (default 1)")
    parser.add_argument("--scale-budget", type=float, default=30.0, help="stop repeating a scale after this (s)")
    parser.add_argument("--naive-reps", type=int, default=1, help="naive fills per scale (default 1)")
    parser.add_argument("--naive-budget", type=float, default=8.0, help="seconds per naive step before estimating")
    parser.add_argument("--skip-naive", action="store_true", help="part 1 without the naive version")
    parser.add_argument("--final-count", type=int, default=1000, help="proposals expiring at once (default 1000)")
    parser.add_argument("--fast-period", type=float, default=0.5, help="finalizer loop period (default 0.5 s)")
    parser.add_argument(
        "--tick-period", type=float, default=2.0, help="beat's proposals.finalize period (default 2 s, as settings)"
    )
    parser.add_argument("--lead", type=float, default=6.0, help="seconds from setting the deadline to it")
    parser.add_argument("--final-timeout", type=float, default=60.0, help="seconds past the deadline to give up")
    parser.add_argument("--only", default="refill,finalize", help="parts to run: refill,finalize")
    parser.add_argument("--no-prototype", action="store_true", help="skip the set-based finalizer prototype")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=900, help="hard bound on the whole bench (default 900)")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database at the end (debugging)")
    quick = {
        "members": 3000,
        "scales": "default,medium",
        "reps": 1,
        "naive_budget": 0.5,
        "final_count": 60,
        "fast_period": 0.5,
        "tick_period": 1.0,
        "lead": 2.5,
        "final_timeout": 20.0,
        "max_seconds": 300,
    }
    args = quick_parse(parser, argv, quick)
    args.scale_names = [s.strip() for s in args.scales.split(",") if s.strip()]
    args.parts = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.members < 2 * args.final_count + 20 or args.reps < 1 or args.final_count < 1:
        parser.error("need --members >= 2 * --final-count + 20 and positive --reps / --final-count")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    db = bench_database(base_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, suffix=SUFFIX)
    # Every Django process here (this one, the finalizers) runs its queries on one thread:
    # a pool's one connection is all it needs.
    env = bench_env(DATABASE_URL=db.url, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1")
    logdir = Path(tempfile.mkdtemp(prefix="bench_proposals_"))
    refills: list[ScaleReport] = []
    finals: list[FinalReport] = []
    passed = False

    with bench_frame(db=db, keep=args.keep_db, max_seconds=args.max_seconds, cleanup=lambda: log(f"logs in {logdir}")):
        log(f"bench database {db.name} (drop + create), logs in {logdir}")
        database_recreate(db)
        django_setup(env)
        from django.conf import settings

        from bench.proposals_support.seed import member_profile_matches, members_draw, members_seed
        from bench.proposals_support.state import audit_install

        database_migrate()
        audit_install()
        pg_version = one("SELECT current_setting('server_version')")
        sync_commit = one("SELECT current_setting('synchronous_commit')")
        log(
            f"migrated; PostgreSQL {pg_version} (synchronous_commit={sync_commit}); python"
            f" {platform.python_version()}, {os.cpu_count()} cpus, load average"
            f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        log(
            f"settings: PROPOSALS_SCALE={settings.PROPOSALS_SCALE} (queue {settings.PROPOSALS_QUEUE_LOW}/"
            f"{settings.PROPOSALS_QUEUE_HIGH}, voting {settings.PROPOSALS_VOTING_LOW}/"
            f"{settings.PROPOSALS_VOTING_HIGH}),"
            f" presets {settings.PROPOSALS_SCALE_PRESETS}, {settings.PROPOSALS_VOTERS_PER_PROPOSAL} voters per"
            f" proposal, approve threshold {settings.PROPOSALS_APPROVE_THRESHOLD}"
        )
        started = time.monotonic()
        members = members_draw(count=args.members, seed=args.seed)
        members_seed(members=members, progress=lambda n: log(f"  seeding: {n:,}/{args.members:,} profiles"))
        log(f"seeded {args.members:,} members (COPY, VACUUM ANALYZE) in {time.monotonic() - started:.1f}s")
        same, detail = member_profile_matches(member=members[0])
        seed_check = ("seeded profiles look like member_create's", same, detail)
        log(f"check {'ok' if same else 'FAIL'}: {seed_check[0]}: {detail}")

        if "refill" in args.parts:
            for scale in scales_list(args.scale_names):
                log(
                    f"part 1, scale {scale.name}: queue {scale.queue_low}/{scale.queue_high},"
                    f" voting {scale.voting_low}/{scale.voting_high}"
                )
                refills.append(part_refill(args=args, scale=scale))
            if refills:
                refills[0].checks.insert(0, seed_check)

        if "finalize" in args.parts:
            from bench.proposals_support.finalize import scenario_build, scenario_snapshot
            from bench.proposals_support.state import state_reset

            variants = [
                Variant("ours", "ours: finalize_due, 2 procs loop", "ours", "loop", 2, args.fast_period),
                Variant("tick", "ours: real finalize task, beat cadence", "tick", "beat", 2, args.tick_period),
                Variant("naive", "naive: per-row, 1 proc loop", "naive", "loop", 1, args.fast_period),
            ]
            if not args.no_prototype:
                variants.append(
                    Variant("setbased", "prototype set-based, beat cadence", "setbased", "beat", 2, args.tick_period)
                )
            state_reset(vacuum=True)
            scenario = scenario_build(count=args.final_count, seed=args.seed)
            scenario_snapshot()
            log(
                f"part 2: {len(scenario.ids):,} voting proposals opened by proposals_open() in"
                f" {fmt_s(scenario.open_s)}, {scenario.votes:,} votes, {len(scenario.approved_expected)} with a yes"
                " majority; snapshot kept, restored before each finalizer"
            )
            for variant in variants:
                log(f"part 2: {variant.label} (every {variant.period:g}s)")
                finals.append(
                    part_finalize(args=args, variant=variant, scenario=scenario, db=db, env=env, logdir=logdir)
                )

        if refills:
            table_refill(refills, members=args.members)
        if finals:
            table_finalize(finals)
            print(
                f"the beat-cadence row: one tick every {args.tick_period:g}s taken by whichever of 2 processes is free,"
                f" with a tick starting {TICK_LEAD_S:g}s before the deadline (the worst phase: nothing is due yet, so"
                f" everything waits for the next tick); on average a deadline waits half a period less."
            )
        passed = verdict_print(refills, finals, members=args.members, quick=args.quick)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
