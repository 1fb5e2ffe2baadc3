"""Flag evaluation: ``flags.services.flag_enabled`` (the in-process snapshot) against waffle's own
``flag_is_active`` (its Redis cache), and how long a flip takes to reach N worker processes.

    python -m bench.flags            # 1,000,000 checks of ours, 20,000 of waffle's; 4 workers, 5 flips
    python -m bench.flags --quick    # tiny sizes, seconds (make test runs it)

Both systems evaluate the same 20 flags (everyone on / off, sticky percentages, listed
members, authenticated, staff, testing and language rules that fall through to a
percentage; no groups: ours answers a group rule with one query) for the same signed-in
members, in the same process, one after the other:

* ours: ``flag_enabled(name, user=member)``, from the snapshot (a stamp check at most once a
  second, no cache or database round trip per check);
* waffle: ``flag_is_active(request, name)`` with a ``RequestFactory`` request carrying the
  member, the project's flag model, and Django's cache on Redis (``--cache-url``) as waffle
  keeps its flags and their member lists there (a GET per flag, another for the member list).

Throughput is a tight loop timed as a whole (evaluations per second); latency is every call
timed on its own with ``time.perf_counter_ns`` (p50 / p99 / p99.9, the clock's own cost
included and printed). Both answers are compared for every (flag, member) pair, and the
cache calls and queries of one pass are counted.

Then the flip: N plain Python processes (``python -m bench.flags --child``), each with
Django set up on the bench database, evaluate one flag for one unit in a loop (a check every
``--child-sleep-ms``) and print the host's monotonic clock when the answer changes; the parent
flips the flag with ``flag_percent_set`` (0 <-> 50 %, the unit's bucket is inside) at random
moments, and each flip's time to every process is read off their reports.

The bench database is ``<name>_bench_flags`` next to ``DATABASE_URL``'s (never that one),
created, migrated and dropped; the Redis db in ``--cache-url`` (never db 0) is flushed at start
and end. Targets: <= 5 us per check (p99), >= 20x waffle's evaluations per second, a flip
visible in every worker process within 5 s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import queue
import random
import select
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.db import bench_database, database_migrate, database_recreate, one, queries_counted
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
from bench.common.options import cache_url_option
from bench.common.procs import Child
from bench.common.report import fmt_x, load_average, log, pct, verdict

SUFFIX = "_bench_flags"
TARGET_CHECK_US = 5.0
TARGET_RATIO = 20.0
TARGET_FLIP_S = 5.0
FLIP_FLAG = "bench_flip"
FLIP_PERCENT = 50
FLAG_PREFIX = "bench_flag_"


# --- the worker processes (``--child``) -------------------------------------------------------
def child_main(argv: Sequence[str]) -> int:
    """Evaluate one flag for one unit in a loop; print ``ready <0|1> <ns>`` once, then
    ``seen <0|1> <ns>`` (CLOCK_MONOTONIC, the same clock in every process of the host) each
    time the answer changes. Runs until stopped, or ``--max-seconds``."""
    parser = argparse.ArgumentParser(prog="bench.flags --child")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--flag", required=True)
    parser.add_argument("--unit", required=True)
    parser.add_argument("--sleep-ms", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    django_setup()
    from flags.services import flag_enabled

    value = flag_enabled(args.flag, unit=args.unit)
    print(f"ready {int(value)} {time.monotonic_ns()}", flush=True)
    sleep = args.sleep_ms / 1000.0
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        now = flag_enabled(args.flag, unit=args.unit)
        if now != value:
            value = now
            print(f"seen {int(value)} {time.monotonic_ns()}", flush=True)
        time.sleep(sleep)
    return 0


# --- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    system: str
    checks: int  # in the throughput loop
    seconds: float
    per_call_ns: np.ndarray  # each call timed on its own

    @property
    def rate(self) -> float:
        return self.checks / self.seconds if self.seconds > 0 else float("inf")

    def us(self, q: float) -> float:
        return pct(self.per_call_ns, q) / 1000.0


@dataclass
class Flip:
    index: int
    value: bool
    wrote_s: float  # the write itself (flag_percent_set, committed when it returns)
    seen_s: list[float] = field(default_factory=list)  # per worker: commit -> that worker's first sight


# --- setup --------------------------------------------------------------------------------------
def flags_seed(*, members: int, seed: int) -> tuple[list[Any], list[str]]:
    """``members`` members (a tenth staff) and the 20 flags; the members as loaded users."""
    from django.contrib.auth.models import User

    from flags.models import Flag

    User.objects.bulk_create(
        [
            User(username=f"bench-member-{i}", password="!", is_staff=i % 10 == 0, email=f"m{i}@bench.invalid")
            for i in range(members)
        ],
        batch_size=2000,
    )
    users = list(User.objects.order_by("pk"))
    rng = random.Random(seed)
    # name -> rules; every flag has superusers off, so the rules past "everyone" are read.
    specs: list[dict[str, Any]] = [
        {"everyone": True},
        {"everyone": True},
        {"everyone": False},
        {"everyone": False},
        *({"percent": p} for p in (5, 10, 25, 33, 50, 66, 75, 95)),
        *({"percent": 10, "members": 20} for _ in range(4)),
        {"authenticated": True},
        {"staff": True, "percent": 20},
        {"testing": True, "percent": 50},
        {"languages": "de,fr", "percent": 50},
    ]
    names = []
    for i, spec in enumerate(specs):
        listed = spec.pop("members", 0)
        flag = Flag(name=f"{FLAG_PREFIX}{i:02d}", superusers=False, **spec)
        flag.save()
        if listed:
            flag.users.set(rng.sample(users, listed))
        names.append(flag.name)
    Flag(name=FLIP_FLAG, superusers=False, percent=0).save()
    return users, names


def pairs_make(names: list[str], users: list[Any], *, per_flag: int, seed: int) -> list[tuple[str, Any]]:
    """(flag, member) pairs, each flag with ``per_flag`` members, in a shuffled order."""
    rng = random.Random(seed)
    pairs = [(name, user) for name in names for user in rng.sample(users, min(per_flag, len(users)))]
    rng.shuffle(pairs)
    return pairs


# --- measuring ---------------------------------------------------------------------------------
def timed_loop(call: Callable[[str, Any], object], pairs: list[tuple[str, Any]], n: int) -> float:
    started = time.perf_counter_ns()
    for name, who in itertools.islice(itertools.cycle(pairs), n):
        call(name, who)
    return (time.perf_counter_ns() - started) / 1e9


def timed_calls(call: Callable[[str, Any], object], pairs: list[tuple[str, Any]], n: int) -> np.ndarray:
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i, (name, who) in enumerate(itertools.islice(itertools.cycle(pairs), n)):
        started = clock()
        call(name, who)
        out[i] = clock() - started
    return out


def clock_cost_ns(n: int = 100_000) -> float:
    """What timing one call adds: two perf_counter_ns calls around nothing (median)."""
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        started = clock()
        out[i] = clock() - started
    return float(np.median(out))


def measure(
    system: str, call: Callable[[str, Any], object], pairs: list[tuple[str, Any]], *, loop: int, calls: int
) -> Timing:
    timed_loop(call, pairs, min(loop, len(pairs) * 2))  # warm: caches filled, snapshot loaded
    seconds = timed_loop(call, pairs, loop)
    per_call = timed_calls(call, pairs, calls)
    timing = Timing(system=system, checks=loop, seconds=seconds, per_call_ns=per_call)
    log(f"{system}: {loop:,} checks in {seconds:.2f} s ({timing.rate:,.0f}/s), p99 {timing.us(99):.2f} us")
    return timing


class CacheCalls:
    """Counts the calls on a Django cache object while installed (its methods wrapped on the
    instance, so nothing else is affected)."""

    METHODS = ("get", "get_many", "set", "add", "set_many", "delete", "delete_many", "has_key")

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.n = 0

    def __enter__(self) -> CacheCalls:
        for method in self.METHODS:
            original = getattr(self.cache, method)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.n += 1
                return _original(*args, **kwargs)

            setattr(self.cache, method, counted)
        return self

    def __exit__(self, *exc: object) -> None:
        for method in self.METHODS:
            delattr(self.cache, method)


def round_trips(call: Callable[[str, Any], object], pairs: list[tuple[str, Any]]) -> tuple[int, int]:
    """(cache calls, queries) for one pass over ``pairs``, warm."""
    from waffle.utils import get_cache

    for name, who in pairs:
        call(name, who)
    with CacheCalls(get_cache()) as cached, queries_counted() as queries:
        for name, who in pairs:
            call(name, who)
    return cached.n, queries.n


# --- the flip across processes -----------------------------------------------------------------
class Reports:
    """Lines the worker processes print, parsed by one reader thread per process."""

    def __init__(self) -> None:
        self.lines: queue.Queue[tuple[int, str, bool, int]] = queue.Queue()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def follow(self, index: int, child: Child) -> threading.Thread:
        assert child.popen is not None and child.popen.stdout is not None
        fd = child.popen.stdout.fileno()

        def read() -> None:
            buffer = b""
            while not self.stop.is_set():
                try:
                    ready, _, _ = select.select([fd], [], [], 0.2)
                    chunk = os.read(fd, 4096) if ready else None
                except (OSError, ValueError):  # the pipe closed under us: the child is being stopped
                    return
                if chunk is None:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    parts = line.decode(errors="replace").split()
                    if len(parts) == 3 and parts[0] in ("ready", "seen"):
                        self.lines.put((index, parts[0], parts[1] == "1", int(parts[2])))

        thread = threading.Thread(target=read, name=f"bench-flags-reader-{index}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def next(self, *, deadline: float, children: list[Child]) -> tuple[int, str, bool, int]:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                return self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                dead = [c for c in children if not c.alive()]
                if dead:
                    raise BenchError(f"{dead[0].name} exited; see {dead[0].log_path}:\n{dead[0].log_tail()}") from None


def flip_unit() -> str:
    """A unit inside the flip flag's 50 % (its bucket <= 50)."""
    from flags.services import rollout_bucket

    return next(u for u in (f"bench-unit-{i}" for i in range(1000)) if rollout_bucket(group=FLIP_FLAG, unit=u) <= 50)


def flips_measure(*, args: argparse.Namespace, env: dict[str, str], logdir: Path, children: list[Child]) -> list[Flip]:
    from flags.services import flag_percent_set

    unit = flip_unit()
    reports = Reports()
    for i in range(args.workers):
        child = Child(
            name=f"worker-{i}",
            argv=[
                *(sys.executable, "-m", "bench.flags", "--child", "--flag", FLIP_FLAG, "--unit", unit),
                *("--sleep-ms", f"{args.child_sleep_ms:g}", "--max-seconds", f"{args.max_seconds:g}"),
            ],
            log_path=logdir / f"worker-{i}.log",
        )
        children.append(child.start(env=env, cwd=ROOT, stdout_pipe=True))
        reports.follow(i, child)
    try:
        ready: set[int] = set()
        deadline = time.monotonic() + 120
        while len(ready) < args.workers:
            try:
                index, kind, value, _ = reports.next(deadline=deadline, children=children)
            except TimeoutError:
                raise BenchError(f"{args.workers - len(ready)} worker processes not ready after 120 s") from None
            if kind == "ready":
                if value:
                    raise BenchError(f"worker-{index} sees {FLIP_FLAG} on before any flip")
                ready.add(index)
        log(f"{args.workers} worker processes evaluate {FLIP_FLAG} for unit {unit} every {args.child_sleep_ms:g} ms")

        rng = random.Random(args.seed)
        flips: list[Flip] = []
        value = False
        for index in range(1, args.flips + 1):
            # A random moment, so the flips do not line up with the workers' once-a-second checks.
            time.sleep(rng.uniform(0.05, args.flip_gap))
            value = not value
            started = time.monotonic_ns()
            flag_percent_set(FLIP_FLAG, FLIP_PERCENT if value else 0, reason=f"bench.flags flip {index}")
            committed = time.monotonic_ns()
            flip = Flip(index=index, value=value, wrote_s=(committed - started) / 1e9)
            seen: dict[int, float] = {}
            deadline = time.monotonic() + args.flip_timeout
            while len(seen) < args.workers:
                try:
                    worker, kind, now, at = reports.next(deadline=deadline, children=children)
                except TimeoutError:
                    raise BenchError(
                        f"flip {index}: {args.workers - len(seen)} worker processes did not see it within"
                        f" {args.flip_timeout:g} s"
                    ) from None
                if kind != "seen" or now != value:
                    raise BenchError(f"flip {index}: worker-{worker} reported {kind} {int(now)}, expected seen {value}")
                if worker in seen:
                    raise BenchError(f"flip {index}: worker-{worker} reported twice")
                seen[worker] = max(0.0, (at - committed) / 1e9)
            flip.seen_s = [seen[w] for w in sorted(seen)]
            flips.append(flip)
            log(f"flip {index} ({'on' if value else 'off'}): seen by all {args.workers} in {max(flip.seen_s):.2f} s")
        return flips
    finally:
        reports.stop.set()
        for thread in reports.threads:
            thread.join(timeout=2)


# --- output -------------------------------------------------------------------------------------
def table_print(ours: Timing, theirs: Timing, *, clock_ns: float) -> None:
    header = (
        f"{'system':<40} | {'checks':>9} | {'evals/s':>11} | {'mean us':>8} | {'p50 us':>7} | {'p99 us':>7}"
        f" | {'p99.9 us':>8} | {'ours ÷ theirs':>13}"
    )
    print(header)
    print("-" * len(header))
    for timing in (ours, theirs):
        ratio = ours.rate / timing.rate
        print(
            f"{timing.system:<40} | {timing.checks:>9,} | {timing.rate:>11,.0f} | {1e6 / timing.rate:>8.2f}"
            f" | {timing.us(50):>7.2f} | {timing.us(99):>7.2f} | {timing.us(99.9):>8.2f} | {fmt_x(ratio, digits=1):>13}"
        )
    print(
        f"(evals/s and mean: a tight loop timed as a whole; p50/p99/p99.9: {ours.per_call_ns.size:,} and"
        f" {theirs.per_call_ns.size:,} calls each timed on its own, the clock's {clock_ns:.0f} ns included;"
        f" p99 ratio {theirs.us(99) / ours.us(99):,.1f}x)"
    )


def flips_print(flips: list[Flip], *, workers: int) -> None:
    header = f"{'flip':>4} | {'to':>3} | {'write s':>7} | {'workers':>7} | {'median s':>8} | {'max s':>6}"
    print(header)
    print("-" * len(header))
    for flip in flips:
        print(
            f"{flip.index:>4} | {'on' if flip.value else 'off':>3} | {flip.wrote_s:>7.3f} | {workers:>7}"
            f" | {statistics.median(flip.seen_s):>8.2f} | {max(flip.seen_s):>6.2f}"
        )
    every = [s for f in flips for s in f.seen_s]
    print(
        f"{'all':>4} | {'':>3} | {'':>7} | {workers:>7} | {statistics.median(every):>8.2f} | {max(every):>6.2f}"
        "   (seconds from the write's commit to each worker process's first evaluation that shows it)"
    )


# --- main ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flags", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=2000, help="signed-in members (a tenth staff)")
    parser.add_argument("--per-flag", type=int, default=50, help="members per flag in the evaluated pairs")
    parser.add_argument("--ours", type=int, default=1_000_000, help="flag_enabled checks in the throughput loop")
    parser.add_argument("--ours-calls", type=int, default=200_000, help="flag_enabled calls timed one by one")
    parser.add_argument("--waffle", type=int, default=20_000, help="flag_is_active checks in the throughput loop")
    parser.add_argument("--waffle-calls", type=int, default=10_000, help="flag_is_active calls timed one by one")
    parser.add_argument("--workers", type=int, default=4, help="worker processes that must see each flip")
    parser.add_argument("--flips", type=int, default=5, help="flips (on, off, on, ...)")
    parser.add_argument("--flip-gap", type=float, default=1.5, help="at most this many seconds between flips")
    parser.add_argument("--flip-timeout", type=float, default=15.0, help="give up on a flip after this")
    parser.add_argument("--child-sleep-ms", type=float, default=1.0, help="a worker's pause between checks")
    parser.add_argument("--seed", type=int, default=11)
    cache_url_option(parser, redis_db=13, what="waffle's Redis cache, flushed at start and end")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard bound on the whole run")
    quick = {
        "members": 300,
        "per_flag": 20,
        "ours": 50_000,
        "ours_calls": 20_000,
        "waffle": 1_000,
        "waffle_calls": 1_000,
        "workers": 2,
        "flips": 2,
        "flip_gap": 0.5,
        "max_seconds": 180.0,
    }
    return quick_parse(parser, argv, quick)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--child" in argv:
        return child_main(argv)
    args = parse_args(argv)
    db = bench_database(base_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, suffix=SUFFIX)
    redis_check(args.cache_url)
    env = bench_env(DATABASE_URL=db.url, CACHE_URL=args.cache_url, DB_POOL="false")
    logdir = Path(tempfile.mkdtemp(prefix="bench_flags_"))
    children: list[Child] = []
    results: dict[str, Any] = {}

    def cleanup() -> None:
        for child in children:
            child.stop(grace=5)
        try:
            redis_flush(args.cache_url)
        except Exception as exc:  # the run's verdict stands; say the flush failed
            log(f"could not flush {args.cache_url}: {exc}")
        log(f"logs in {logdir}")

    with bench_frame(db=db, keep=args.keep, max_seconds=args.max_seconds, cleanup=cleanup) as frame:
        log(f"recreating database {db.name} (the database in DATABASE_URL is not touched); flushing {args.cache_url}")
        database_recreate(db)
        redis_flush(args.cache_url)
        django_setup(env)
        database_migrate()
        results.update(run(args=args, env=env, logdir=logdir, children=children))
    if frame.failed:
        return 1
    return report(args=args, **results)


def run(*, args: argparse.Namespace, env: dict[str, str], logdir: Path, children: list[Child]) -> dict[str, Any]:
    from django.conf import settings
    from django.test import RequestFactory
    from waffle import flag_is_active

    from flags.services import flag_enabled

    backend = settings.CACHES["default"]["BACKEND"]
    if "redis" not in backend.lower():
        raise BenchError(f"waffle's cache must be Redis for this bench, it is {backend}")
    users, names = flags_seed(members=args.members, seed=args.seed)
    pairs = pairs_make(names, users, per_flag=args.per_flag, seed=args.seed)
    factory = RequestFactory()
    requests: dict[int, Any] = {}
    for user in users:
        request = factory.get("/")
        request.user = user
        requests[user.pk] = request
    waffle_pairs = [(name, requests[user.pk]) for name, user in pairs]
    log(f"{len(names)} flags, {len(users):,} members, {len(pairs):,} (flag, member) pairs; cache {backend}")

    def ours_call(name: str, user: Any) -> object:
        return flag_enabled(name, user=user)

    def waffle_call(name: str, request: Any) -> object:
        return flag_is_active(request, name)

    disagree = [
        (name, user.pk)
        for (name, user), (_, request) in zip(pairs, waffle_pairs, strict=True)
        if flag_enabled(name, user=user) != bool(flag_is_active(request, name))
    ]
    trips_ours = round_trips(ours_call, pairs)
    trips_waffle = round_trips(waffle_call, waffle_pairs)
    clock_ns = clock_cost_ns()
    with queries_counted() as stamp_checks:
        ours = measure(
            "ours: flag_enabled (in-process snapshot)", ours_call, pairs, loop=args.ours, calls=args.ours_calls
        )
    theirs = measure(
        "waffle: flag_is_active (Redis cache)", waffle_call, waffle_pairs, loop=args.waffle, calls=args.waffle_calls
    )
    flips = flips_measure(args=args, env=env, logdir=logdir, children=children)
    return {
        "ours": ours,
        "theirs": theirs,
        "pairs": len(pairs),
        "disagree": disagree,
        "trips_ours": trips_ours,
        "trips_waffle": trips_waffle,
        "stamp_checks": stamp_checks.n,
        "clock_ns": clock_ns,
        "flips": flips,
        "facts": f"PostgreSQL {one('SHOW server_version')}, python {platform.python_version()}",
    }


def report(
    *,
    args: argparse.Namespace,
    ours: Timing,
    theirs: Timing,
    pairs: int,
    disagree: list[tuple[str, int]],
    trips_ours: tuple[int, int],
    trips_waffle: tuple[int, int],
    stamp_checks: int,
    clock_ns: float,
    flips: list[Flip],
    facts: str,
) -> int:
    print()
    print(f"{facts}; load average {load_average()}")
    print()
    table_print(ours, theirs, clock_ns=clock_ns)
    print(
        f"round trips per check (one warm pass over {pairs:,} pairs): ours {trips_ours[0] / pairs:.2f} cache calls,"
        f" {trips_ours[1] / pairs:.3f} queries; waffle {trips_waffle[0] / pairs:.2f} cache calls,"
        f" {trips_waffle[1] / pairs:.3f} queries"
    )
    ours_seconds = ours.seconds + ours.per_call_ns.sum() / 1e9
    print(
        f"ours: {stamp_checks} stamp checks (queries) in {ours_seconds:.1f} s of measured checks (at most one a second)"
    )
    print()
    print(f"flip -> every one of {args.workers} worker processes sees it (flag_percent_set 0 <-> {FLIP_PERCENT} %):")
    flips_print(flips, workers=args.workers)
    print()

    worst = max(s for f in flips for s in f.seen_s)
    ratio = ours.rate / theirs.rate
    ok = verdict(
        ours.us(99) <= TARGET_CHECK_US,
        f"flag_enabled p99 {ours.us(99):.2f} us per check <= {TARGET_CHECK_US:g} us",
        quick=args.quick,
    )
    ok &= verdict(
        1e6 / ours.rate <= TARGET_CHECK_US,
        f"flag_enabled mean {1e6 / ours.rate:.2f} us per check in a tight loop <= {TARGET_CHECK_US:g} us",
        quick=args.quick,
    )
    ok &= verdict(
        ratio >= TARGET_RATIO,
        f"flag_enabled {ours.rate:,.0f} evals/s = {ratio:,.1f}x waffle's flag_is_active ({theirs.rate:,.0f}/s)"
        f" >= {TARGET_RATIO:g}x",
        quick=args.quick,
    )
    ok &= verdict(
        worst <= TARGET_FLIP_S,
        f"a flip is seen by every one of {args.workers} worker processes within {worst:.2f} s <= {TARGET_FLIP_S:g} s"
        f" ({len(flips)} flips)",
        quick=args.quick,
    )
    checks = [
        (
            not disagree,
            f"flag_enabled and flag_is_active agree on all {pairs:,} (flag, member) pairs"
            + (f" (not on {len(disagree)}: {disagree[:5]})" if disagree else ""),
        ),
        (
            trips_ours[0] == 0 and trips_ours[1] <= 1,  # the pass may hold the second's stamp check
            f"no cache call and no query per check of flag_enabled ({trips_ours[0]} and {trips_ours[1]} in {pairs:,})",
        ),
        (
            stamp_checks <= ours_seconds + 2,
            f"at most one stamp check a second ({stamp_checks} in {ours_seconds:.1f} s)",
        ),
        (len(flips) == args.flips, f"every worker process saw every one of {args.flips} flips"),
    ]
    for good, text in checks:
        if not good:
            print(f"FAIL  correctness: {text}")
    correct = all(good for good, _ in checks)
    if correct:
        print("PASS  correctness: " + "; ".join(text for _, text in checks))
    return 0 if ok and correct else 1


if __name__ == "__main__":
    sys.exit(main())
