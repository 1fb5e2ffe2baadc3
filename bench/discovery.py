"""Discovery at Day-0 scale: suggestions over HTTP against the plain scoring, and the discovery
queue's throughput and job age at half of its maximum.

One command:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/matchplatform .venv/bin/python -m bench.discovery
    make bench-discovery
    .venv/bin/python -m bench.discovery --quick   # tiny sizes, seconds, no targets (make test runs it)

Data. The bench never touches the database named by ``DATABASE_URL``: it seeds its own
``<name>_bench_discovery`` next to it with set-based SQL (``bench/discovery_support/seed.py``):
100k members (``auth_user``, 4,000 of them with DRF API tokens), the Day-0 catalog grown to 60
interests, 200 categories and 10k candidates, 1-5 interests per member (1 in 20 with none:
the fallback slate), and 10M learning events. The seeded database is KEPT for the next run and
reused when it was seeded with the same sizes (a marker table, ``bench_discovery_meta``); what
a run adds (its learning events, its queue jobs) is deleted at the end. ``--reseed`` seeds
again; ``--drop`` drops the database at the end. ``--quick`` uses its own
``<name>_bench_discovery_quick`` and always drops it.

Suggestions. gunicorn serves the project on 127.0.0.1 (``DEBUG`` off; settings
``bench.discovery_support.settings``: the project's, plus the bench URLs and an
``X-Bench-Timing`` header). 8 client processes, each with a keep-alive connection, send
``GET <endpoint>?limit=12`` back to back (closed loop) as members signed in with
``Authorization: Token <key>``, each client cycling over its own members:

* ours: ``/api/discovery/suggestions`` when the project's URLconf has it, else the bench's
  stand-in ``/bench/discovery/suggestions`` (the same service, ``suggestions_for_user``);
* plain: ``/bench/discovery/suggestions-plain``, the same pipeline with every active candidate
  scored by one query per request, all ordered by score (``bench/discovery_support/views.py``).

Both in the same run, with the same clients, members and server, interleaved in rounds (the
order flips each round). Every request logs a decision: a row INSERTed into the 10M-row
learning log. Then, not gating, both again open loop: the same clients sending on a schedule at
half of ours' closed-loop throughput (latency from each request's due time).

Queue. W forked worker processes run ``discovery_jobs_process_batch`` (the Celery task's
body): first draining a full queue (the maximum throughput, batch ``DISCOVERY_CLAIM_BATCH``
with 2 and then 4 workers, the faster being the maximum, and as the plain alternative batch
1), then an offered load at half of the measured maximum for a
bounded time; each job's age (enqueue -> claimed and enqueue -> done) comes from the
database's timestamps (``bench/discovery_support/queue.py``).

Targets (the issue's): ours p95 <= 30 ms; queue p95 age (enqueue -> done) <= 2 s at half the
maximum load; plus correctness (the scoring equals the reference per-category scoring for
sampled members and its best candidate is the plain query's, every response is a 200 with the
suggestions' shape, every request logged exactly one decision, every job done exactly once).
Exit status 1 if any fails.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.common.db import bench_database, database_migrate, database_recreate, migrations_pending
from bench.common.env import DEFAULT_DATABASE_URL, ROOT, BenchError, bench_env, django_setup, quick_parse, redis_check
from bench.common.frame import bench_frame
from bench.common.options import cache_url_option
from bench.common.procs import Child
from bench.common.procs import gunicorn_start as procs_gunicorn_start
from bench.common.report import checks_log, fmt_ms, fmt_x, load_average, log, pct, verdict

SUFFIX = "_bench_discovery"
QUICK_SUFFIX = "_bench_discovery_quick"
REAL_PATH = "/api/discovery/suggestions"
STAND_IN_PATH = "/bench/discovery/suggestions"
PLAIN_PATH = "/bench/discovery/suggestions-plain"
TARGET_P95_MS = 30.0
TARGET_AGE_P95_S = 2.0


# -- data -------------------------------------------------------------------------------------
def data_ready(*, args: argparse.Namespace, db: Any, plan: Any) -> tuple[str, dict[str, Any]]:
    """Reuse the seeded bench database, or (re)create, migrate and seed it; the line saying
    which, and the marker's values."""
    from django.db import connections

    from bench.discovery_support.seed import load, meta_write, plan_dict, reusable, run_leftovers_clear
    from discovery.services import catalog_seed_day0

    reuse, why, meta = (False, "--reseed given", None) if args.reseed else reusable(dsn=db.dsn, plan=plan)
    if reuse:
        pending = migrations_pending()
        if pending:
            # The seed's tables are the app's own: migrating forward keeps the seeded rows.
            log(f"applying {len(pending)} new migration(s) to the seeded {db.name}: {', '.join(pending)}")
            try:
                database_migrate()
            except Exception as exc:
                reuse, why = False, f"migrating it forward failed ({type(exc).__name__}: {exc})"
    if reuse:
        assert meta is not None
        removed = run_leftovers_clear(db.dsn, events_max_id=int(meta["events_max_id"]))
        line = f"reused the seeded {db.name} ({why}; {removed:,} events of an earlier run removed)"
        log(line)
        return line, meta
    log(f"seeding {db.name}: {why}")
    connections.close_all()
    database_recreate(db)
    database_migrate()
    catalog_seed_day0()
    connections.close_all()
    log(
        f"created and migrated {db.name}, Day-0 catalog loaded; seeding {plan.members:,} members,"
        f" {plan.candidates:,} candidates, {plan.events:,} learning events"
    )
    meta = load(dsn=db.dsn, plan=plan, log=log)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        meta_write(conn, plan=plan_dict(plan), complete=True, **meta)
    line = f"seeded in {meta['load_seconds']:.0f}s: " + "; ".join(
        f"{name} {s:.0f}s" for name, s in meta["phases"].items() if s >= 1
    )
    log(line)
    return line, meta


# -- correctness in process -----------------------------------------------------------------------
def scoring_reference(*, user_id: int) -> tuple[list[int], list[float]]:
    """The scoring as first written (a query per category, the best 50 by popularity each):
    what ``candidates_scored_for_user`` must keep returning, however it gets there."""
    from discovery.models import Candidate, InterestCategory, UserInterest
    from discovery.serving import CANDIDATES_PER_CATEGORY

    affinity = dict(UserInterest.objects.filter(user_id=user_id).values_list("interest_id", "affinity"))
    by_category: dict[int, float] = {}
    for interest_id, category_id in InterestCategory.objects.filter(interest_id__in=list(affinity)).values_list(
        "interest_id", "category_id"
    ):
        by_category[category_id] = max(by_category.get(category_id, 0.0), affinity[interest_id])
    ids: list[int] = []
    scores: list[float] = []
    for category_id, weight in sorted(by_category.items()):
        for candidate_id, popularity in (
            Candidate.objects.filter(category_id=category_id, active=True)
            .order_by("-popularity", "id")
            .values_list("id", "popularity")[:CANDIDATES_PER_CATEGORY]
        ):
            ids.append(candidate_id)
            scores.append(round(weight * popularity, 6))
    return ids, scores


def scoring_checks(member_ids: Sequence[int]) -> list[tuple[str, bool, str]]:
    from django.contrib.auth.models import User

    from bench.discovery_support.views import candidates_scored_plain
    from discovery.selectors import candidates_scored_for_user

    differ: list[int] = []
    best_differs: list[int] = []
    personal = 0
    sizes: list[int] = []
    for user in User.objects.filter(pk__in=list(member_ids)):
        ours = candidates_scored_for_user(user=user, fallback_size=12)
        ids, scores = scoring_reference(user_id=user.pk)
        if ids:
            personal += 1
            sizes.append(len(ids))
            if (ours.candidate_ids, ours.scores, ours.personal) != (ids, scores, True):
                differ.append(user.pk)
            plain = candidates_scored_plain(user=user, fallback_size=12)
            if max(ours.scores) != plain.scores[0] or not set(ours.candidate_ids) <= set(plain.candidate_ids):
                best_differs.append(user.pk)
        elif ours.personal:
            differ.append(user.pk)
    n = len(member_ids)
    mean = sum(sizes) / len(sizes) if sizes else 0.0
    return [
        (
            "ours scores as the per-category reference does",
            not differ,
            f"{n} members ({personal} personal, {mean:.0f} candidates each on average)"
            + (f"; differ: {differ[:5]}" if differ else ""),
        ),
        (
            "ours' candidates are among the plain query's and its best score is the plain query's first",
            not best_differs,
            f"{personal} members" + (f"; differ: {best_differs[:5]}" if best_differs else ""),
        ),
    ]


def events_max() -> int:
    from django.db.models import Max

    from discovery.models import LearningEvent

    return int(LearningEvent.objects.aggregate(m=Max("id"))["m"] or 0)


def events_since(max_id: int) -> int:
    from discovery.models import LearningEvent

    return int(LearningEvent.objects.filter(id__gt=max_id).count())


# -- the server and the load -------------------------------------------------------------------
def endpoint_ours() -> tuple[str, str]:
    """The real member endpoint when the project's URLconf resolves it, else the stand-in."""
    from django.urls import Resolver404, resolve

    try:
        resolve(REAL_PATH)
        return REAL_PATH, "the project's endpoint (discovery/api.py)"
    except Resolver404:
        return (
            STAND_IN_PATH,
            "the bench's stand-in (suggestions_for_user; /api/discovery/suggestions is not routed yet)",
        )


def gunicorn_start(*, args: argparse.Namespace, env: dict[str, str], logdir: Path) -> tuple[Child, int]:
    return procs_gunicorn_start(
        workers=args.web_workers,
        worker_args=["--worker-class=gthread", f"--threads={args.threads}", "--keep-alive=75"],
        env=env,
        cwd=ROOT,
        logdir=logdir,
        ready_path=STAND_IN_PATH,
    )


def http_checks(*, port: int, token: str, paths: Sequence[str]) -> tuple[str, bool, str]:
    import http.client

    from bench.discovery_support.client import body_ok

    problems = []
    for path in paths:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", f"{path}?limit=12", headers={"Authorization": f"Token {token}"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or not body_ok(body)[0]:
                problems.append(f"{path}: {response.status} {body[:200]!r}")
            conn.request("GET", f"{path}?limit=12")
            anonymous = conn.getresponse()
            anonymous.read()
            if anonymous.status != 401:
                problems.append(f"{path} without a token: {anonymous.status}, not 401")
        finally:
            conn.close()
    return (
        "both endpoints answer a token holder 200 with the suggestions' shape and 401 without a token",
        not problems,
        "; ".join(problems) or f"{', '.join(paths)}",
    )


# -- the tables --------------------------------------------------------------------------------
def suggestions_table(
    *,
    results: dict[str, Any],
    paths: dict[str, str],
    baseline: Any,
    open_results: dict[str, Any],
    open_rate: float,
    args: argparse.Namespace,
    cpu: dict[str, Any],
    cpu_sent: dict[str, int],
) -> None:
    header = (
        f"{'system':<16} | {'endpoint':<40} | {'requests':>8} | {'p50 ms':>6} | {'p95 ms':>6} | {'p99 ms':>6}"
        f" | {'req/s':>5} | {'app p50':>7} | {'db p50':>6} | {'queries':>7} | {'p95 ÷ ours':>10}"
        f" | {'CPU ms/req web + db + clients':>29} | {'others':>6}"
    )
    print(header)
    print("-" * len(header))
    ours_p95 = pct(results["ours"].latency_ms, 95)
    rows = [("ours", results["ours"]), ("plain", results["plain"])]
    if baseline is not None:
        rows.append(("ours, 1 client", baseline))
    rows += [(f"{name}, open loop", r) for name, r in open_results.items()]
    for name, r in rows:
        key = "ours" if name.startswith("ours") else "plain"
        p95 = pct(r.latency_ms, 95)
        print(
            f"{name:<16} | {paths[key] + '?limit=12':<40} | {r.n:>8,} | {fmt_ms(pct(r.latency_ms, 50)):>6}"
            f" | {fmt_ms(p95):>6} | {fmt_ms(pct(r.latency_ms, 99)):>6} | {r.rps:>5.0f}"
            f" | {fmt_ms(pct(r.app_ms, 50)):>7} | {fmt_ms(pct(r.db_ms, 50)):>6}"
            f" | {pct(r.queries, 50):>7.0f} | {fmt_x(p95 / ours_p95 if ours_p95 else math.nan):>10}"
            f" | {cpu_cell(cpu[name], cpu_sent[name]):>29} | {per_request(cpu[name].others, cpu_sent[name]):>6}"
        )
    print(
        f"notes: {args.clients} client processes, closed loop (no think time), keep-alive; gunicorn gthread"
        f" {args.web_workers} workers x {args.threads} threads (2 cores: one worker per core, threads overlap the"
        " database waits; a pool of at most as many connections as threads per worker); ms are client-side"
        " (request written -> body read); app / db p50 = the server's X-Bench-Timing (middleware -> response,"
        " time in cursor.execute); queries = statements per request p50; every request INSERTs a learning event;"
        " '1 client' = the service time without queueing (not gating). 'open loop' (not gating): the same"
        f" {args.clients} clients sending on a schedule, {open_rate:,.0f} requests/s in all"
        f" ({args.open_fraction:.0%} of ours' closed-loop req/s), latency from each request's due time."
        " CPU ms/req: from /proc, gunicorn's processes + the bench database's backends + the client processes ="
        " the total, per request sent; others = every other process on the machine meanwhile (PostgreSQL's WAL"
        " writer, checkpointer and autovacuum, Redis, and whatever else shares the cores). Closed loop with C"
        f" clients on {os.cpu_count()} cores: when CPU-bound, latency is about C x total CPU ms / cores."
    )


def per_request(seconds: float, sent: int) -> str:
    return fmt_ms(seconds * 1000 / sent) if sent else "-"


def cpu_cell(use: Any, sent: int) -> str:
    if not sent:
        return "-"
    parts = [per_request(use.web, sent), per_request(use.db, sent), per_request(use.clients, sent)]
    return f"{' + '.join(parts)} = {per_request(use.web + use.db + use.clients, sent)}"


def queue_tables(*, drains: list[Any], best: Any, offered: Any, fraction: float) -> None:
    header = (
        f"{'queue run':<30} | {'jobs':>7} | {'workers':>7} | {'batch':>5} | {'seconds':>7} | {'jobs/s':>7}"
        f" | {'ours ÷ this':>11}"
    )
    print(header)
    print("-" * len(header))
    for d in drains:
        print(
            f"{d.label:<30} | {d.jobs:>7,} | {d.workers:>7} | {d.batch:>5} | {d.seconds:>7.2f}"
            f" | {d.jobs_per_s:>7,.0f} | {fmt_x(best.jobs_per_s / d.jobs_per_s if d.jobs_per_s else math.nan):>11}"
        )
    print()
    header = (
        f"{'offered load':<22} | {'jobs/s':>7} | {'achieved':>8} | {'seconds':>7} | {'jobs':>6}"
        f" | {'p50 age claim':>13} | {'p95 age claim':>13} | {'p50 age done':>12} | {'p95 age done':>12}"
        f" | {'max age done':>12}"
    )
    print(header)
    print("-" * len(header))
    o = offered
    print(
        f"{f'{fraction:.0%} of max, {best.workers} w':<22} | {o.rate:>7,.0f} | {o.achieved_rate:>8,.0f}"
        f" | {o.seconds:>7.0f}"
        f" | {o.enqueued:>6,} | {pct(o.claim_age_s, 50) * 1000:>10,.0f} ms | {pct(o.claim_age_s, 95) * 1000:>10,.0f} ms"
        f" | {pct(o.done_age_s, 50) * 1000:>9,.0f} ms | {pct(o.done_age_s, 95) * 1000:>9,.0f} ms"
        f" | {float(o.done_age_s.max() if o.done_age_s.size else math.nan) * 1000:>9,.0f} ms"
    )
    print(
        "notes: jobs/s = jobs / (workers told to go -> last worker finds the queue empty), each job its own ack"
        " transaction with its gap bookkeeping; the drain runs are not timed for enqueueing. Offered load:"
        " jobs enqueued every 50 ms at the rate; workers poll every"
        f" {o.poll_s * 1000:.0f} ms when the queue is empty (production: woken on commit). age claim = enqueue ->"
        " claimed (the claim's history row); age done = enqueue -> acked (finished_at); the target is on age done."
    )


# -- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=100_000, help="members (default 100000)")
    p.add_argument("--candidates", type=int, default=10_000, help="candidates (default 10000)")
    p.add_argument("--interests", type=int, default=60, help="interests in the catalog (default 60)")
    p.add_argument("--categories", type=int, default=200, help="categories (default 200)")
    p.add_argument("--events", type=int, default=10_000_000, help="learning events seeded (default 10000000)")
    p.add_argument("--event-candidates", type=int, default=12, help="ids per seeded decision's candidate set (12)")
    p.add_argument("--token-members", type=int, default=4_000, help="members with an API token (default 4000)")
    p.add_argument("--clients", type=int, default=8, help="concurrent client processes (default 8)")
    p.add_argument("--requests", type=int, default=4_000, help="measured requests per system (default 4000)")
    p.add_argument("--rounds", type=int, default=4, help="each system's requests split over rounds (default 4)")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured requests per client per round (default 5)")
    p.add_argument("--baseline-requests", type=int, default=300, help="ours with 1 client (0: skip; default 300)")
    p.add_argument(
        "--open-fraction",
        type=float,
        default=0.5,
        help="open-loop rows at this fraction of ours' closed-loop throughput (0: skip; default 0.5)",
    )
    p.add_argument("--open-requests", type=int, default=1_600, help="measured open-loop requests per system (1600)")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn gthread workers (default 2, one per core)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    p.add_argument(
        "--queue-workers",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[2, 4],
        help="discovery worker processes, one drain per count; the best is the maximum (default 2,4)",
    )
    p.add_argument("--queue-batch", type=int, default=0, help="claim batch (default DISCOVERY_CLAIM_BATCH)")
    p.add_argument("--queue-jobs", type=int, default=6_000, help="jobs drained at batch --queue-batch (6000)")
    p.add_argument("--queue-jobs-plain", type=int, default=1_500, help="jobs drained at batch 1 (default 1500)")
    p.add_argument("--load-fraction", type=float, default=0.5, help="offered load / measured maximum (0.5)")
    p.add_argument("--load-seconds", type=float, default=30.0, help="how long the load is offered (default 30)")
    p.add_argument("--poll", type=float, default=0.05, help="an idle worker's poll interval, seconds (0.05)")
    p.add_argument("--cell-timeout", type=float, default=300.0, help="seconds per cell before giving up (300)")
    p.add_argument("--max-seconds", type=float, default=3600, help="hard bound on the whole bench (default 3600)")
    p.add_argument("--check-members", type=int, default=60, help="members whose scoring is checked (default 60)")
    p.add_argument("--reseed", action="store_true", help="seed again even when the kept database matches")
    p.add_argument("--drop", action="store_true", help="drop the bench database at the end (default: keep it)")
    p.add_argument("--seed-only", action="store_true", help="seed (or reuse) and check the data, then stop")
    cache_url_option(p, redis_db=12, what="the Redis cache of the served project")
    quick = {
        "members": 2_000,
        "candidates": 600,
        "interests": 20,
        "categories": 30,
        "events": 40_000,
        "token_members": 200,
        "clients": 2,
        "requests": 40,
        "rounds": 1,
        "warmup": 2,
        "baseline_requests": 10,
        "check_members": 12,
        "open_requests": 20,
        "web_workers": 1,
        "threads": 2,
        "queue_jobs": 200,
        "queue_workers": [2],
        "queue_jobs_plain": 60,
        "load_seconds": 2.0,
        "cell_timeout": 60.0,
        "max_seconds": 240,
    }
    args = quick_parse(p, argv, quick)
    if args.clients < 1 or args.rounds < 1 or args.requests < args.clients or not 0 < args.load_fraction <= 1:
        p.error("need --clients >= 1, --rounds >= 1, --requests >= --clients and 0 < --load-fraction <= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    db = bench_database(base_url=base_url, suffix=QUICK_SUFFIX if args.quick else SUFFIX)
    redis_check(args.cache_url)
    keep = not (args.drop or args.quick)
    env = bench_env(
        DATABASE_URL=db.url,
        DJANGO_SETTINGS_MODULE="bench.discovery_support.settings",
        DJANGO_ENV="development",
        CACHE_URL=args.cache_url,
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE=str(args.threads),
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench_discovery_"))
    server: Child | None = None
    marker: dict[str, Any] = {}
    passed = False

    def cleanup() -> None:
        if server is not None:
            server.stop(grace=10)
        if keep and marker.get("events_max_id") is not None:
            from bench.discovery_support.seed import run_leftovers_clear

            try:
                removed = run_leftovers_clear(db.dsn, events_max_id=int(marker["events_max_id"]))
                log(f"removed this run's {removed:,} learning events and its queue jobs from the kept database")
            except Exception as exc:
                log(f"could not clear this run's rows: {exc}")
        log(f"logs in {logdir}")

    with bench_frame(db=db, keep=keep, max_seconds=args.max_seconds, cleanup=cleanup):
        # This process forks the clients and the queue workers: no pool threads to inherit.
        django_setup(env, DB_POOL="false")
        from django.conf import settings
        from django.db import connections

        from bench.common.cpu import CpuMeter, CpuUse, cpu_between
        from bench.discovery_support.client import Req, empty_result, run_cell
        from bench.discovery_support.queue import offered_load, queue_checks, queue_reset, throughput_measure
        from bench.discovery_support.seed import SeedPlan, load_checks

        plan = SeedPlan(
            members=args.members,
            candidates=args.candidates,
            interests=args.interests,
            categories=args.categories,
            events=args.events,
            event_candidates=args.event_candidates,
            token_members=args.token_members,
        )
        plan.check()
        log(f"bench database {db.name} ({'kept for reuse' if keep else 'dropped at the end'}); logs in {logdir}")
        seed_line, meta = data_ready(args=args, db=db, plan=plan)
        marker.update(meta)
        checks = load_checks(db.dsn, plan, first_member=int(meta["first_member"]))
        checks_log(checks)
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version'), current_setting('synchronous_commit')")
            pg_version, sync_commit = cursor.fetchone()
        facts = (
            f"PostgreSQL {pg_version} (synchronous_commit={sync_commit}); python {platform.python_version()};"
            f" {os.cpu_count()} cpus; load average {load_average()}"
        )
        log(facts)
        if args.seed_only:
            return 0 if all(ok for _, ok, _ in checks) else 1

        # Members the clients sign in as: the token holders, dealt out to the clients in turn.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT user_id, key FROM authtoken_token ORDER BY user_id")
            tokens = cursor.fetchall()
        if len(tokens) < args.clients:
            raise BenchError("fewer token holders than clients")
        sample = [uid for uid, _ in tokens[:: max(len(tokens) // args.check_members, 1)]][: args.check_members]
        scoring = scoring_checks(sample)
        checks += scoring
        checks_log(scoring)

        ours_path, ours_what = endpoint_ours()
        paths = {"ours": ours_path, "plain": PLAIN_PATH}
        log(f"ours: {ours_path}, {ours_what}; plain: {PLAIN_PATH}")
        first_event = events_max()
        connections.close_all()
        server, port = gunicorn_start(args=args, env=env, logdir=logdir)
        log(
            f"gunicorn on 127.0.0.1:{port}: gthread {args.web_workers} workers x {args.threads} threads, DEBUG off,"
            " settings bench.discovery_support.settings"
        )
        checks.append(http_checks(port=port, token=tokens[0][1], paths=[ours_path, PLAIN_PATH]))
        log(f"check {'ok' if checks[-1][1] else 'FAIL'}: {checks[-1][0]}: {checks[-1][2]}")
        sent = 2  # the two checks above, with a token

        def plans_for(path: str, clients: int) -> list[list[Req]]:
            return [[Req(f"{path}?limit=12", key) for _, key in tokens[i::clients]] for i in range(clients)]

        meter = CpuMeter(server_pid=server.pid, dsn=db.dsn, datname=db.name)
        cpu: dict[str, CpuUse] = {
            name: CpuUse() for name in ("ours", "plain", "ours, 1 client", "ours, open loop", "plain, open loop")
        }
        cpu_sent: dict[str, int] = dict.fromkeys(cpu, 0)

        def measured(name: str, path: str, clients: int, quota: int, rate: float = 0.0) -> Any:
            before = meter.snapshot()
            r = run_cell(
                port=port,
                plans=plans_for(path, clients),
                warmup=args.warmup,
                quota=quota,
                timeout=args.cell_timeout,
                rate=rate,
            )
            cpu[name] += cpu_between(before, meter.snapshot(), clients=r.client_cpu_s)
            cpu_sent[name] += r.sent
            return r

        baseline = None
        if args.baseline_requests > 0:
            baseline = measured("ours, 1 client", ours_path, 1, args.baseline_requests)
            sent += baseline.sent
            if baseline.errors:
                raise BenchError(f"ours, 1 client: {'; '.join(baseline.errors[:3])}")
            log(
                f"ours, 1 client: p50 {fmt_ms(pct(baseline.latency_ms, 50))} ms,"
                f" p95 {fmt_ms(pct(baseline.latency_ms, 95))} ms"
            )
        results = {"ours": empty_result(), "plain": empty_result()}
        quota = math.ceil(args.requests / args.clients / args.rounds)
        log(
            f"measuring {args.rounds} round(s) x 2 systems: {args.clients} clients x {quota} measured requests each"
            f" per round (after {args.warmup} warm-up each), closed loop"
        )
        for rnd in range(args.rounds):
            order = ["ours", "plain"] if rnd % 2 == 0 else ["plain", "ours"]
            for system in order:
                r = measured(system, paths[system], args.clients, quota)
                sent += r.sent
                if r.errors:
                    raise BenchError(f"{system}: {'; '.join(r.errors[:3])}")
                results[system] = results[system].merged(r)
                log(
                    f"  round {rnd + 1}/{args.rounds} {system:<5}: p50 {fmt_ms(pct(r.latency_ms, 50)):>6} ms,"
                    f" p95 {fmt_ms(pct(r.latency_ms, 95)):>6} ms, {r.rps:4.0f} req/s; app p50"
                    f" {fmt_ms(pct(r.app_ms, 50))} ms, db p50 {fmt_ms(pct(r.db_ms, 50))} ms;"
                    f" load {os.getloadavg()[0]:.1f}"
                )
            if not server.alive():
                raise BenchError(f"gunicorn exited; see {server.log_path}")
        open_results: dict[str, Any] = {}
        open_rate = args.open_fraction * results["ours"].rps
        if args.open_fraction > 0 and open_rate > 0:
            open_quota = math.ceil(args.open_requests / args.clients)
            log(
                f"open loop (not gating): {open_rate:,.0f} requests/s in all ({args.open_fraction:.0%} of ours'"
                f" closed-loop throughput), {args.clients} clients x {open_quota} measured requests each"
            )
            for system in ("ours", "plain"):
                r = measured(f"{system}, open loop", paths[system], args.clients, open_quota, rate=open_rate)
                sent += r.sent
                if r.errors:
                    raise BenchError(f"{system}, open loop: {'; '.join(r.errors[:3])}")
                open_results[system] = r
                log(
                    f"  {system:<5} open loop: p50 {fmt_ms(pct(r.latency_ms, 50)):>6} ms,"
                    f" p95 {fmt_ms(pct(r.latency_ms, 95)):>6} ms, {r.rps:4.0f} req/s"
                )
        meter.close()
        server.stop(grace=10)
        server = None
        all_cells = [
            results["ours"],
            results["plain"],
            *([baseline] if baseline is not None else []),
            *open_results.values(),
        ]
        statuses = sum((r.statuses for r in all_cells), start=empty_result().statuses)
        bad = sum(r.bad_bodies for r in all_cells)
        non_ok = {s: n for s, n in statuses.items() if s != 200}
        checks.append(
            (
                "every measured response is a 200 with the suggestions' shape",
                not non_ok and bad == 0,
                f"{sum(statuses.values()):,} responses ({results['ours'].personal + results['plain'].personal:,}"
                f" personal)" + (f", non-200: {non_ok}" if non_ok else "") + (f", {bad} bad bodies" if bad else ""),
            )
        )
        logged = events_since(first_event)
        checks.append(
            ("every request logged exactly one decision", logged == sent, f"{sent:,} requests, {logged:,} events")
        )
        checks_log(checks[-2:])

        # -- the queue --
        batch = args.queue_batch or int(settings.DISCOVERY_CLAIM_BATCH)
        drains = []
        checked: list[tuple[bool, str]] = []
        for workers in args.queue_workers:
            log(f"queue: draining {args.queue_jobs:,} jobs with {workers} workers, batch {batch}")
            drain = throughput_measure(
                dsn=db.dsn,
                label=f"ours, batch {batch} (drain)",
                jobs=args.queue_jobs,
                workers=workers,
                batch=batch,
                timeout=args.cell_timeout,
            )
            drains.append(drain)
            checked.append(queue_checks(db.dsn))
            log(f"  {drain.jobs_per_s:,.0f} jobs/s; {checked[-1][1]}")
        # The maximum: the best worker count; the plain alternative and the offered load use it.
        ours_drain = max(drains, key=lambda d: d.jobs_per_s)
        plain_drain = throughput_measure(
            dsn=db.dsn,
            label="plain, batch 1 (drain)",
            jobs=args.queue_jobs_plain,
            workers=ours_drain.workers,
            batch=1,
            timeout=args.cell_timeout,
        )
        plain_ok, plain_detail = queue_checks(db.dsn)
        log(f"  batch 1: {plain_drain.jobs_per_s:,.0f} jobs/s; {plain_detail}")
        rate = ours_drain.jobs_per_s * args.load_fraction
        log(
            f"queue: offering {rate:,.0f} jobs/s ({args.load_fraction:.0%} of the maximum) for {args.load_seconds:.0f}s"
        )
        offered = offered_load(
            dsn=db.dsn,
            rate=rate,
            seconds=args.load_seconds,
            workers=ours_drain.workers,
            batch=batch,
            poll=args.poll,
        )
        load_ok, load_detail = queue_checks(db.dsn)
        queue_reset(db.dsn)
        errors = [e for d in drains for e in d.errors] + plain_drain.errors + offered.errors
        drain_ok = all(ok for ok, _ in checked)
        drain_detail = "; ".join(detail for _, detail in checked)
        checks.append(
            (
                "every queue job done exactly once (drains and offered load)",
                drain_ok and plain_ok and load_ok and offered.left == 0 and not errors,
                f"{drain_detail}; {plain_detail}; {load_detail}" + (f"; errors: {errors[:3]}" if errors else ""),
            )
        )
        log(f"check {'ok' if checks[-1][1] else 'FAIL'}: {checks[-1][0]}: {checks[-1][2]}")

        print()
        print(
            f"discovery bench: {plan.members:,} members ({plan.token_members:,} with API tokens), {plan.candidates:,}"
            f" candidates in {plan.categories} categories, {plan.interests} interests, {plan.events:,} learning events"
        )
        print(facts)
        print(seed_line)
        print()
        suggestions_table(
            results=results,
            paths=paths,
            baseline=baseline,
            open_results=open_results,
            open_rate=open_rate,
            args=args,
            cpu=cpu,
            cpu_sent=cpu_sent,
        )
        print()
        queue_tables(drains=[*drains, plain_drain], best=ours_drain, offered=offered, fraction=args.load_fraction)
        print()
        ours_p95 = pct(results["ours"].latency_ms, 95)
        plain_p95 = pct(results["plain"].latency_ms, 95)
        age_p95 = pct(offered.done_age_s, 95)
        gates = [
            verdict(
                ours_p95 <= TARGET_P95_MS,
                f"suggestions p95 {fmt_ms(ours_p95)} ms <= {TARGET_P95_MS:.0f} ms at {args.clients} clients"
                f" (plain {fmt_ms(plain_p95)} ms, {fmt_x(plain_p95 / ours_p95 if ours_p95 else math.nan)})",
                quick=args.quick,
            ),
            verdict(
                age_p95 <= TARGET_AGE_P95_S,
                f"queue p95 age (enqueue -> done) {age_p95 * 1000:,.0f} ms <= {TARGET_AGE_P95_S * 1000:,.0f} ms at"
                f" {rate:,.0f} jobs/s ({args.load_fraction:.0%} of the measured {ours_drain.jobs_per_s:,.0f} jobs/s)",
                quick=args.quick,
            ),
        ]
        for label, ok, detail in checks:
            print(f"{'PASS' if ok else 'FAIL'}  correctness: {label}: {detail}")
        passed = all(gates) and all(ok for _, ok, _ in checks)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
