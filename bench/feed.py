"""The matches feed at 4.1 million matches: HTTP p50/p95 at 8 concurrent clients, keyset vs offset.

One command:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/matchplatform .venv/bin/python -m bench.feed
    make bench-feed
    .venv/bin/python -m bench.feed --quick   # tiny sizes, seconds, no targets (make test runs it)

The bench never touches the database named by ``DATABASE_URL``: it creates its own
``<name>_bench_feed`` next to it, migrates it, loads it with set-based SQL (200k members,
300 events, 4.1M matches with their proposals and conversations, 8.2M feed items; see
``bench/feed_support/load.py``) and drops it at the end (``--keep`` keeps it; ``--reuse`` keeps
it and skips the load when a complete load with the same parameters is already there).

It then serves the project with gunicorn on 127.0.0.1 (``DEBUG`` off, the project's settings
plus a bench URLconf with the offset alternative and a timing header), signs 32 heavy members
in with real Django sessions, and measures, for each sort (newest, compatibility,
expiring_soon) and depth (page 1, page 100), closed-loop GETs from 8 client processes:

* keyset: ``/api/matches/?sort=S`` and, for page 100, ``&cursor=`` the cursor found by walking
  pages 1..99 with ``next_cursor`` beforehand (in process, through ``proposals.matches.selectors.feed_page``);
* offset: ``/bench/matches-offset/?sort=S&page=N``, the same feed (same filters, order and
  serialization) paged by OFFSET/LIMIT (``bench/feed_support/offset.py``).

gunicorn runs 4 sync workers (a connection per request; see bench/README.md for why), and the
keyset cells also run with 1 client first (the service time). CPU per request is measured
from /proc for gunicorn, the bench database's backends, the clients and everything else.

Targets (the issue's): keyset p95 <= 50 ms at every sort and depth, and keyset page-100 p95 /
page-1 p95 <= 1.2 per sort; plus correctness (walks have no repeats, follow the sort and equal
both a plain SQL ORDER BY and the OFFSET pages, in process and over HTTP). Exit status 1 if
any fails.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg

from bench.common.db import bench_database, database_migrate, database_recreate, migrations_pending
from bench.common.env import DEFAULT_DATABASE_URL, ROOT, BenchError, bench_env, django_setup, quick_parse, redis_check
from bench.common.frame import bench_frame
from bench.common.options import cache_url_option
from bench.common.procs import Child
from bench.common.procs import gunicorn_start as procs_gunicorn_start
from bench.common.report import checks_log, fmt_ms, fmt_x, log, pct, verdict

SUFFIX = "_bench_feed"
SORTS = ("newest", "compatibility", "expiring_soon")
MODES = ("keyset", "offset")
TARGET_P95_MS = 50.0
TARGET_DEPTH_RATIO = 1.2
REUSE_MAX_AGE_H = 20.0  # the open pending matches expire from 1 day after the load on


# -- data -------------------------------------------------------------------------------------
def reusable(*, dsn: str, plan_wanted: dict[str, Any]) -> tuple[bool, str, dict[str, Any] | None]:
    from bench.feed_support.load import meta_read

    meta = meta_read(dsn)
    if not meta:
        return False, "no bench data there", None
    if not meta.get("complete"):
        return False, "the last load did not complete", meta
    if meta.get("plan") != plan_wanted:
        return False, "it was loaded with other parameters", meta
    loaded_at = datetime.fromisoformat(meta["loaded_at"])
    age_h = (datetime.now(UTC) - loaded_at).total_seconds() / 3600
    if age_h > REUSE_MAX_AGE_H:
        return False, f"it was loaded {age_h:.1f} h ago (open pending matches start expiring at 24 h)", meta
    return True, f"loaded {age_h:.1f} h ago", meta


def sessions_create(member_ids: Sequence[int]) -> dict[int, str]:
    """A real Django session per member (what ``login()`` stores, in the project's session
    engine: the database and the Redis cache), as a Cookie header value."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.contrib.auth.models import User

    store = import_module(settings.SESSION_ENGINE).SessionStore
    # The backend login() would record: the first that can load a session's user (a lockout
    # backend such as axes' only checks sign-ins, and comes first).
    backend = next(path for path in settings.AUTHENTICATION_BACKENDS if hasattr(load_backend(path), "get_user"))
    cookies: dict[int, str] = {}
    for user in User.objects.filter(pk__in=member_ids):
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = backend
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies[user.pk] = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    return cookies


def sessions_delete(cookies: dict[int, str]) -> None:
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore
    for cookie in cookies.values():
        store(session_key=cookie.split("=", 1)[1]).delete()


def server_facts() -> dict[str, str]:
    from django.db import connection

    names = ("server_version", "synchronous_commit", "shared_buffers", "work_mem", "jit", "random_page_cost")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", [list(names)])
        rows = {name: (setting, unit) for name, setting, unit in cursor.fetchall()}
        cursor.execute("SHOW shared_buffers")
        shared = cursor.fetchone()[0]
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    facts = {name: rows[name][0] for name in names if name in rows}
    facts["shared_buffers"] = shared
    facts["server_version"] = version
    return facts


# -- requests ---------------------------------------------------------------------------------
def path_for(*, mode: str, sort: str, depth: int, cursor: str | None) -> str:
    after = f"&cursor={quote(cursor)}" if cursor else ""
    if mode == "keyset":
        return f"/api/matches/?sort={sort}{after}"
    return f"/bench/matches-offset/?sort={sort}&page={depth}"


def http_checks(
    *,
    port: int,
    members: Sequence[int],
    cookies: dict[int, str],
    walks: dict[Any, Any],
    depth: int,
    modes: Sequence[str],
) -> list[tuple[str, bool, str]]:
    """Over HTTP, for every member and sort: every mode's page 1 and page ``depth`` return the
    walked pages' matches, and keyset page ``depth - 1`` hands out the walked cursor."""
    from bench.feed_support.client import Req, get_json

    compared = bad = 0
    problems: list[str] = []
    for member in members:
        for sort in SORTS:
            w = walks[(member, sort)]
            for page_no in (1, depth):
                want = w.match_ids[page_no - 1]
                for mode in modes:
                    cursor = w.cursors[page_no - 1]
                    req = Req(path_for(mode=mode, sort=sort, depth=page_no, cursor=cursor), cookies[member])
                    status, body = get_json(port=port, req=req)
                    got = [r["match_id"] for r in body["results"]] if status == 200 and body else None
                    compared += 1
                    if got != want:
                        bad += 1
                        problems.append(f"member {member} {sort} {mode} page {page_no}: HTTP {status}")
            req = Req(path_for(mode="keyset", sort=sort, depth=depth - 1, cursor=w.cursors[depth - 2]), cookies[member])
            status, body = get_json(port=port, req=req)
            compared += 1
            if status != 200 or not body or body.get("next_cursor") != w.cursors[depth - 1]:
                bad += 1
                problems.append(f"member {member} {sort}: HTTP page {depth - 1} next_cursor differs from the walk's")
    for p in problems[:10]:
        log(f"  problem: {p}")
    return [
        (
            f"over HTTP ({', '.join(modes)}): pages 1 and {depth} == walked pages; page {depth - 1}'s next_cursor",
            bad == 0,
            f"{compared - bad}/{compared} responses as expected",
        )
    ]


def explain_section(*, members: Sequence[int], walks: dict[Any, Any], depth: int) -> tuple[list[str], list[str]]:
    """EXPLAIN ANALYZE of every feed-item statement of a page (with its parameters), for a
    standard and a pending-heavy member: keyset page 1 and page ``depth``, and offset page
    ``depth``. Also: which keyset pages read their ids other than by a plain index range."""
    from django.contrib.auth.models import User

    from bench.feed_support.offset import offset_page
    from bench.feed_support.walk import explain_page
    from proposals.matches.cursor import Cursor
    from proposals.matches.params import FeedQuery
    from proposals.matches.selectors import feed_page

    lines: list[str] = []
    bad_plans: list[str] = []
    for member in members:
        user = User.objects.get(pk=member)
        for sort in SORTS:
            w = walks[(member, sort)]
            cursor = Cursor.decode(w.cursors[depth - 1], sort=sort)
            segment = ""
            if sort == "expiring_soon":
                segment = f" ({'open pending' if w.segments[depth - 1] == 0 else 'rest'} segment)"

            def page_1(user: Any = user, sort: str = sort) -> Any:
                return feed_page(user=user, query=FeedQuery(sort=sort))

            def page_deep(user: Any = user, sort: str = sort, cursor: Any = cursor) -> Any:
                return feed_page(user=user, query=FeedQuery(sort=sort, cursor=cursor))

            def page_offset(user: Any = user, sort: str = sort) -> Any:
                return offset_page(user=user, query=FeedQuery(sort=sort), page=depth)

            runs: list[tuple[str, Any]] = [
                ("keyset page 1", page_1),
                (f"keyset page {depth}", page_deep),
                (f"offset page {depth}", page_offset),
            ]
            for label, run in runs:
                plans = explain_page(run=run)
                where = segment if sort == "expiring_soon" and not label.endswith(" 1") else ""
                lines.append(f"member {member}, {sort}, {label}{where}:")
                for p in plans:
                    lines.append(f"    {p.text()}")
                    if label.startswith("keyset") and p.label == "feed rows" and not p.ids_by_index:
                        bad_plans.append(f"member {member}, {sort}, {label}{where}: {p.text()}")
    return lines, bad_plans


# -- report -----------------------------------------------------------------------------------
Results = dict[tuple[str, str, int], Any]


def _p95(results: Results, mode: str, sort: str, depth: int) -> float:
    return pct(results[(mode, sort, depth)].latency_ms, 95)


def table_print(results: Results, *, depth: int, concurrency: int, loads: list[float]) -> None:
    print()
    n = min((r.n for (mode, _, _), r in results.items() if mode in MODES), default=0)
    load = f"load average {min(loads):.1f}..{max(loads):.1f}" if loads else ""
    busy = sum(r.cpu.busy for r in results.values())
    total = sum(r.cpu.total for r in results.values())
    others = sum(r.cpu.others for r in results.values())
    print(f"== matches feed: HTTP latency at {concurrency} concurrent clients, client side, ms (n = {n} per cell) ==")
    if total:
        print(
            f"machine during the measurement: {busy / total:.0%} busy, {others / total:.0%} of all CPU taken by"
            f" processes other than this bench's (gunicorn, its database backends, the clients); {load}"
        )
    header = (
        f"{'sort':<13} | {'depth':<8} | {'keyset p50':>10} | {'keyset p95':>10} | {'offset p50':>10} |"
        f" {'offset p95':>10} | {'offset÷keyset p95':>17}"
    )
    print(header)
    print("-" * len(header))
    for sort in SORTS:
        for d in (1, depth):
            k = results[("keyset", sort, d)]
            o = results[("offset", sort, d)]
            kp95, op95 = pct(k.latency_ms, 95), pct(o.latency_ms, 95)
            print(
                f"{sort:<13} | {f'page {d}':<8} | {fmt_ms(pct(k.latency_ms, 50)):>10} | {fmt_ms(kp95):>10} |"
                f" {fmt_ms(pct(o.latency_ms, 50)):>10} | {fmt_ms(op95):>10} | {fmt_x(op95 / kp95, digits=2):>17}"
            )
    parts = []
    for sort in SORTS:
        k = _p95(results, "keyset", sort, depth) / _p95(results, "keyset", sort, 1)
        o = _p95(results, "offset", sort, depth) / _p95(results, "offset", sort, 1)
        parts.append(f"{sort} keyset {fmt_x(k, digits=2)} (offset {fmt_x(o, digits=2)})")
    print(f"page {depth} p95 ÷ page 1 p95: " + "; ".join(parts))


def table_extra(baseline: Results, *, depth: int, concurrency: int) -> None:
    if not baseline:
        return
    print()
    print("not gating: the keyset feed with 1 client (service time, no queueing), ms")
    header = f"{'sort':<13} | {'depth':<8} | {'1 client p50':>12} | {'1 client p95':>12} | {'CPU ms/request':>14}"
    print(header)
    print("-" * len(header))
    for sort in SORTS:
        for d in (1, depth):
            b = baseline.get(("keyset", sort, d))
            bp50 = pct(b.latency_ms, 50) if b else math.nan
            bp95 = pct(b.latency_ms, 95) if b else math.nan
            cpu = (b.cpu_ms("web") + b.cpu_ms("db") + b.cpu_ms("clients")) if b else math.nan
            print(f"{sort:<13} | {f'page {d}':<8} | {fmt_ms(bp50):>12} | {fmt_ms(bp95):>12} | {fmt_ms(cpu):>14}")
    n = min(r.n for r in baseline.values())
    print(
        f"1 client: n = {n} per cell, same server; CPU ms/request = gunicorn + the bench database's backends +"
        f" the client, per request. At {concurrency} clients in a closed loop on {os.cpu_count()} cpus a request"
        f" takes about {concurrency} x that / {os.cpu_count()} whatever the page."
    )


def top_share(r: Any) -> str:
    """The busiest gunicorn worker's share of the cell's measured requests."""
    total = sum(r.workers.values())
    return f"{max(r.workers.values()) / total:.0%} of {len(r.workers)}" if total else "-"


def table_server(results: Results, *, depth: int) -> None:
    print()
    print(
        "where the time goes: server side from X-Bench-Timing (app = first middleware to rendered response, db ="
        " time in cursor.execute), ms p50; CPU ms per request from /proc (web = gunicorn, db = the bench database's"
        " backends, cl = the client processes, others = the rest of the machine), and the machine's busy share"
    )
    header = (
        f"{'mode':<8} | {'sort':<13} | {'depth':<8} | {'req/s':>5} | {'app':>6} | {'db':>6} | {'queries':>7} |"
        f" {'client-app':>10} | {'CPU web':>7} | {'db':>5} | {'cl':>4} | {'others':>6} | {'busy':>4} |"
        f" {'top worker':>10}"
    )
    print(header)
    print("-" * len(header))
    modes = [m for m in MODES if any(k[0] == m for k in results)]
    for sort in SORTS:
        for d in (1, depth):
            for mode in modes:
                r = results[(mode, sort, d)]
                gap = r.latency_ms - r.app_ms if r.app_ms.size == r.latency_ms.size else np.array([])
                print(
                    f"{mode:<8} | {sort:<13} | {f'page {d}':<8} | {r.rps:>5.0f} | {fmt_ms(pct(r.app_ms, 50)):>6} |"
                    f" {fmt_ms(pct(r.db_ms, 50)):>6} | {np.mean(r.queries) if r.queries.size else math.nan:>7.1f} |"
                    f" {fmt_ms(pct(gap, 50)):>10} | {fmt_ms(r.cpu_ms('web')):>7} | {fmt_ms(r.cpu_ms('db')):>5} |"
                    f" {fmt_ms(r.cpu_ms('clients')):>4} | {fmt_ms(r.cpu_ms('others')):>6} | {r.busy_share:>4.0%} |"
                    f" {top_share(r):>10}"
                )
    print(
        "db includes the round trip, planning and waiting to get the GIL back; client-app = client latency - app"
        " time (gunicorn, the socket, waiting for a thread or a CPU). With C cpus and every request needing w + d + c"
        " ms of CPU, at most C x 1000 / (w + d + c) requests/s fit, so 8 clients in a closed loop wait about"
        " 8 x (w + d + c) / C ms each. top worker = the busiest gunicorn worker's share of the requests."
    )


def verdict_print(
    results: Results, *, depth: int, checks: list[tuple[str, bool, str]], bad_plans: list[str] | None, quick: bool
) -> bool:
    print()
    print("== targets ==")
    gating: list[bool] = []
    for sort in SORTS:
        for d in (1, depth):
            p95 = _p95(results, "keyset", sort, d)
            text = f"keyset p95 {sort}, page {d}: {fmt_ms(p95)} ms <= {TARGET_P95_MS:.0f} ms"
            gating.append(verdict(p95 <= TARGET_P95_MS, text, quick=quick))
    for sort in SORTS:
        p1 = _p95(results, "keyset", sort, 1)
        pd = _p95(results, "keyset", sort, depth)
        ratio = pd / p1
        text = (
            f"keyset page {depth} p95 ÷ page 1 p95, {sort}: {fmt_ms(pd)} / {fmt_ms(p1)} ="
            f" {fmt_x(ratio, digits=2)} <= {TARGET_DEPTH_RATIO}x"
        )
        gating.append(verdict(ratio <= TARGET_DEPTH_RATIO, text, quick=quick))
    failed = [c for c in checks if not c[1]]
    for label, ok, detail in checks:
        print(f"    check {'ok' if ok else 'FAIL'}: {label}: {detail}")
    gating.append(verdict(not failed, f"correctness: {len(checks) - len(failed)}/{len(checks)} checks ok"))
    if bad_plans is not None:
        print(
            f"{'note' if bad_plans else 'ok  '}  (not gating) keyset pages read their ids by index ranges on"
            f" proposals_feed_* under a LIMIT, sorting no more than a page: "
            + ("yes, in every EXPLAIN above" if not bad_plans else f"NOT in {len(bad_plans)} of them:")
        )
        for line in bad_plans:
            print(f"        {line}")
    return all(gating)


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matches", type=int, default=4_100_000, help="matches loaded (default 4100000)")
    p.add_argument("--members", type=int, default=200_000, help="members loaded (default 200000)")
    p.add_argument("--heavy-members", type=int, default=32, help="heavy members the clients sign in as (32)")
    p.add_argument("--heavy-matches", type=int, default=6_500, help="matches of each heavy member (6500)")
    p.add_argument("--events", type=int, default=300, help="events (default 300)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--index-mode",
        choices=("drop", "indexed"),
        default="drop",
        help="drop: drop secondary indexes, load, recreate them (default); indexed: load into the indexed tables",
    )
    p.add_argument("--load-only", action="store_true", help="load (or reuse) and check the data, then stop")
    p.add_argument("--concurrency", type=int, default=8, help="client processes (default 8)")
    p.add_argument("--requests", type=int, default=800, help="measured requests per cell (default 800)")
    p.add_argument("--rounds", type=int, default=8, help="each cell's requests split over this many rounds (8)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured requests per client before each cell round (3)")
    p.add_argument("--baseline-requests", type=int, default=100, help="1-client requests per keyset cell (0: skip)")
    p.add_argument("--depth", type=int, default=100, help="the deep page (default 100)")
    p.add_argument(
        "--worker-class",
        choices=("sync", "gthread"),
        default="sync",
        help="gunicorn worker class (default sync: a connection per request, each taken by an idle worker;"
        " gthread: keep-alive connections, --threads per worker)",
    )
    p.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (default 4, two per core)")
    p.add_argument("--threads", type=int, default=4, help="threads per worker with --worker-class gthread (4)")
    p.add_argument("--walk-procs", type=int, default=2, help="processes walking the feeds beforehand (default 2)")
    p.add_argument("--cell-timeout", type=float, default=180.0, help="seconds per cell round before giving up")
    p.add_argument("--max-seconds", type=float, default=3600, help="hard bound on the whole bench (default 3600)")
    p.add_argument("--keep", action="store_true", help="keep the bench database at the end")
    p.add_argument("--reuse", action="store_true", help="reuse a complete load of the same parameters (implies --keep)")
    p.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN ANALYZE section")
    cache_url_option(p, redis_db=12, what="the Redis cache (and sessions) of the served project")
    quick = {
        "matches": 20_000,
        "members": 2_000,
        "heavy_members": 4,
        "heavy_matches": 120,
        "events": 10,
        "depth": 5,
        "concurrency": 2,
        "requests": 8,
        "rounds": 1,
        "warmup": 1,
        "baseline_requests": 2,
        "workers": 2,
        "walk_procs": 1,
        "cell_timeout": 30.0,
        "max_seconds": 300,
    }
    args = quick_parse(p, argv, quick)
    if args.reuse:
        args.keep = True
    if args.depth < 2 or args.heavy_matches < args.depth * 20 or args.concurrency < 1 or args.rounds < 1:
        p.error("need --depth >= 2, --heavy-matches >= 20 x --depth, --concurrency >= 1 and --rounds >= 1")
    return args


def data_ready(*, args: argparse.Namespace, db: Any, dsn: str, plan: Any) -> str:
    """Reuse the bench database or (re)create, migrate and load it; the line saying which."""
    from django.db import connections

    from bench.feed_support.load import load, meta_write, plan_dict

    wanted = plan_dict(plan)
    reuse, why, meta = reusable(dsn=dsn, plan_wanted=wanted) if args.reuse else (False, "--reuse not given", None)
    if reuse:
        pending = migrations_pending()
        if pending:
            reuse, why = False, f"migrations not applied there: {', '.join(pending)}"
    if reuse:
        assert meta is not None
        line = (
            f"reused the data in {db.name} ({why}); that load took {meta.get('load_seconds', 0):.0f}s"
            f" (indexes {meta.get('index_mode', '?')})"
        )
        log(line)
        return line
    if args.reuse:
        log(f"not reusing {db.name}: {why}; loading")
    connections.close_all()
    database_recreate(db)
    database_migrate()
    log(
        f"created and migrated {db.name}; loading {plan.matches:,} matches, {plan.members:,} members"
        f" ({plan.clients} heavy with {plan.client_matches:,} matches each), {plan.events} events;"
        f" indexes {'dropped during the load' if args.index_mode == 'drop' else 'kept during the load'}"
    )
    now = datetime.now(UTC)
    report = load(dsn=dsn, plan=plan, now=now, index_mode=args.index_mode, log=log)
    with psycopg.connect(dsn, autocommit=True) as conn:
        meta_write(
            conn,
            plan=wanted,
            loaded_at=now.isoformat(),
            load_seconds=report.total_s,
            index_mode=args.index_mode,
            phases=report.phases,
            complete=True,
        )
    line = f"loaded in {report.total_s:.0f}s ({report.total_s / 60:.1f} min, indexes {args.index_mode}): " + "; ".join(
        f"{name} {s:.0f}s" for name, s, _ in report.phases if s >= 1
    )
    log(line)
    return line


def server_config(args: argparse.Namespace) -> str:
    if args.worker_class == "gthread":
        return f"{args.workers} gthread workers x {args.threads} threads, keep-alive connections"
    return f"{args.workers} sync workers, a new connection per request"


def gunicorn_start(*, args: argparse.Namespace, env: dict[str, str], logdir: Path) -> tuple[Child, int]:
    gthread = [f"--threads={args.threads}", "--keep-alive=75"] if args.worker_class == "gthread" else []
    return procs_gunicorn_start(
        workers=args.workers,
        worker_args=[f"--worker-class={args.worker_class}", *gthread],
        env=env,
        cwd=ROOT,
        logdir=logdir,
        ready_path="/api/matches/",
    )


def cells_measure(
    *,
    args: argparse.Namespace,
    port: int,
    server: Child,
    modes: Sequence[str],
    concurrency: int,
    requests: int,
    rounds: int,
    members: Sequence[int],
    cookies: dict[int, str],
    walks: dict[Any, Any],
    loads: list[float],
    dsn: str,
    datname: str,
) -> Results:
    from bench.common.cpu import CpuMeter, cpu_between
    from bench.feed_support.client import Req, empty_result, run_cell

    cells = [(mode, sort, d) for sort in SORTS for d in (1, args.depth) for mode in modes]
    results: Results = {cell: empty_result() for cell in cells}
    quota = math.ceil(requests / concurrency / rounds)
    assignment = [list(members[i::concurrency]) for i in range(concurrency)]
    if any(not a for a in assignment):
        raise BenchError("fewer heavy members than clients")
    log(
        f"measuring {len(cells)} cells x {rounds} round(s): {concurrency} client(s) x {quota} measured requests each"
        f" per round (after {args.warmup} warm-up each), closed loop; each client cycles over its"
        f" {len(assignment[0])} member(s)"
    )
    meter = CpuMeter(server_pid=server.pid, dsn=dsn, datname=datname)
    try:
        for rnd in range(rounds):
            order = cells if rnd % 2 == 0 else list(reversed(cells))
            for mode, sort, d in order:
                plans = [
                    [
                        Req(path_for(mode=mode, sort=sort, depth=d, cursor=walks[(m, sort)].cursors[d - 1]), cookies[m])
                        for m in mine
                    ]
                    for mine in assignment
                ]
                before = meter.snapshot()
                r = run_cell(
                    port=port,
                    plans=plans,
                    warmup=args.warmup,
                    quota=quota,
                    timeout=args.cell_timeout,
                    keepalive=args.worker_class == "gthread",
                )
                r.cpu = cpu_between(before, meter.snapshot(), clients=r.client_cpu_s)
                if r.errors:
                    raise BenchError(f"{mode} {sort} page {d}: {'; '.join(r.errors[:3])}")
                results[(mode, sort, d)] = results[(mode, sort, d)].merged(r)
                loads.append(os.getloadavg()[0])
                log(
                    f"  round {rnd + 1}/{rounds} {mode:<8} {sort:<13} page {d:<3}: p50"
                    f" {fmt_ms(pct(r.latency_ms, 50)):>6} ms, p95 {fmt_ms(pct(r.latency_ms, 95)):>6} ms,"
                    f" {r.rps:4.0f} req/s; app p50 {fmt_ms(pct(r.app_ms, 50))} ms; CPU ms/request web"
                    f" {fmt_ms(r.cpu_ms('web'))} db {fmt_ms(r.cpu_ms('db'))} clients {fmt_ms(r.cpu_ms('clients'))}"
                    f" others {fmt_ms(r.cpu_ms('others'))}"
                )
            if not server.alive():
                raise BenchError(f"gunicorn exited; see {server.log_path}")
    finally:
        meter.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    db = bench_database(base_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, suffix=SUFFIX)
    redis_check(args.cache_url)
    dsn = db.dsn
    env = bench_env(
        DATABASE_URL=db.url,
        DJANGO_SETTINGS_MODULE="bench.feed_support.settings",
        DJANGO_ENV="development",
        # The configuration the README gives for more than one web process: the cache (and
        # with it the sessions) on Redis.
        CACHE_URL=args.cache_url,
        # gunicorn's workers pool: a connection per thread at most (sync: one request at a
        # time, so one).
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE=str(args.threads if args.worker_class == "gthread" else 1),
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench_feed_"))
    server: Child | None = None
    cookies: dict[int, str] = {}
    passed = False

    def cleanup() -> None:
        if server is not None:
            server.stop(grace=10)
        if cookies and args.keep:
            with contextlib.suppress(Exception):
                sessions_delete(cookies)
        log(f"logs in {logdir}")

    with bench_frame(db=db, keep=args.keep, max_seconds=args.max_seconds, cleanup=cleanup):
        # This process forks the walkers, which must not inherit a connection pool (its
        # threads, its idle connections).
        django_setup(env, DB_POOL="false")
        from django.db import connections

        from bench.feed_support.load import LoadPlan, load_checks, status_mix
        from bench.feed_support.walk import walks_checked
        from proposals.matches.terms import PAGE_SIZE_DEFAULT

        plan = LoadPlan(
            members=args.members,
            clients=args.heavy_members,
            client_matches=args.heavy_matches,
            matches=args.matches,
            events=args.events,
            seed=args.seed,
        )
        plan.check()
        log(f"bench database {db.name}; logs in {logdir}")
        load_line = data_ready(args=args, db=db, dsn=dsn, plan=plan)
        checks = load_checks(dsn, plan, min_items=args.depth * PAGE_SIZE_DEFAULT)
        checks_log(checks)
        log(f"status mix now: {status_mix(dsn)}")
        facts = server_facts()
        facts_line = (
            f"PostgreSQL {facts.get('server_version')} (synchronous_commit={facts.get('synchronous_commit')},"
            f" shared_buffers={facts.get('shared_buffers')}, work_mem={facts.get('work_mem')}kB,"
            f" jit={facts.get('jit')}, random_page_cost={facts.get('random_page_cost')}); python"
            f" {platform.python_version()}, {os.cpu_count()} cpus"
        )
        log(f"{facts_line}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.load_only:
            passed = all(ok for _, ok, _ in checks)
            return 0 if passed else 1

        members = list(range(1, plan.clients + 1))
        offset_pages = sorted({1, 2, 3, args.depth // 2, args.depth - 1, args.depth})
        log(f"walking pages 1..{args.depth} with next_cursor (in process, feed_page) for {len(members)} members")
        walks, walk_checks = walks_checked(
            member_ids=members, depth=args.depth, offset_pages=offset_pages, procs=args.walk_procs, log=log
        )
        checks += walk_checks
        checks_log(walk_checks)
        if not all(len(w.cursors) >= args.depth for w in walks.values()):
            raise BenchError("the walks did not reach the deep page; see the problems above")
        heavy = [walks[(m, "expiring_soon")] for m in members if plan.client_is_pending_heavy(m)]
        other = [walks[(m, "expiring_soon")] for m in members if not plan.client_is_pending_heavy(m)]
        d = args.depth
        log(
            f"expiring_soon: {len(heavy)} pending-heavy members have {min(w.open_pending for w in heavy):,}.."
            f"{max(w.open_pending for w in heavy):,} open pending matches (page {d} inside them for"
            f" {sum(1 for w in heavy if w.segments[d - 1] == 0)}), the {len(other)} others"
            f" {min(w.open_pending for w in other):,}..{max(w.open_pending for w in other):,} (page {d} past them for"
            f" {sum(1 for w in other if w.segments[d - 1] == 1)})"
        )

        cookies = sessions_create(members)
        connections.close_all()
        server, port = gunicorn_start(args=args, env=env, logdir=logdir)
        log(
            f"gunicorn on 127.0.0.1:{port}: {server_config(args)}, DEBUG off, settings"
            " bench.feed_support.settings (the project's + the bench URLs + X-Bench-Timing)"
        )
        modes = [*MODES]
        checks += http_checks(port=port, members=members, cookies=cookies, walks=walks, depth=d, modes=modes)
        log(f"check {'ok' if checks[-1][1] else 'FAIL'}: {checks[-1][0]}: {checks[-1][2]}")

        explain_lines: list[str] = []
        bad_plans: list[str] | None = None
        if not args.no_explain:
            explain_members = [members[0], next(m for m in members if plan.client_is_pending_heavy(m))]
            explain_lines, bad_plans = explain_section(members=explain_members, walks=walks, depth=d)
            connections.close_all()
            log(f"EXPLAIN: {len(bad_plans)} keyset pages whose ids are not read by index ranges under a LIMIT")

        loads: list[float] = []
        baseline: Results = {}
        if args.baseline_requests > 0:
            baseline = cells_measure(
                args=args,
                port=port,
                server=server,
                modes=["keyset"],
                concurrency=1,
                requests=args.baseline_requests,
                rounds=1,
                members=members,
                cookies=cookies,
                walks=walks,
                loads=[],
                dsn=dsn,
                datname=db.name,
            )
        results = cells_measure(
            args=args,
            port=port,
            server=server,
            modes=modes,
            concurrency=args.concurrency,
            requests=args.requests,
            rounds=args.rounds,
            members=members,
            cookies=cookies,
            walks=walks,
            loads=loads,
            dsn=dsn,
            datname=db.name,
        )
        statuses: Counter[int] = Counter()
        for r in [*results.values(), *baseline.values()]:
            statuses += r.statuses
        non_ok = {s: n for s, n in statuses.items() if s != 200}
        checks.append(
            (
                "every measured response is 200",
                not non_ok,
                f"{sum(statuses.values()):,} responses" + (f", non-200: {non_ok}" if non_ok else ""),
            )
        )

        print()
        print(
            f"feed bench: {plan.matches:,} matches ({2 * plan.matches:,} feed items), {plan.members:,} members;"
            f" the clients sign in as {plan.clients} heavy members with {plan.client_matches:,} matches each (half of"
            f" them pending-heavy); page size 20; {args.concurrency} concurrent client processes, closed loop;"
            f" gunicorn {server_config(args)}"
        )
        print(facts_line)
        print(load_line)
        table_print(results, depth=d, concurrency=args.concurrency, loads=loads)
        table_extra(baseline, depth=d, concurrency=args.concurrency)
        table_server(results, depth=d)
        if explain_lines:
            print()
            print("EXPLAIN (ANALYZE, BUFFERS) of the feed-item queries the ORM runs for one page (warm, in process):")
            for line in explain_lines:
                print(f"  {line}")
        passed = verdict_print(results, depth=d, checks=checks, bad_plans=bad_plans, quick=args.quick)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
