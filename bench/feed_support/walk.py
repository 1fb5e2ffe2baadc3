"""In-process walks of the feed (``proposals.matches.selectors.feed_page``, the function the API calls),
the correctness checks on them, and EXPLAIN ANALYZE of the statements a page runs.

A walk follows ``next_cursor`` from page 1 to page ``depth`` for one member and sort, and keeps
every page's feed item ids and match public ids, and the cursor that asks for each page (the
one the HTTP clients send for page ``depth``). Checked per walk: no item twice; every page full
and a cursor after every page but the last; the items in the sort's order; the walked items
equal the first ``depth x page_size`` rows of one plain SQL ORDER BY over the member's feed
items; and the OFFSET pages (``bench/feed_support/offset.py``) equal the walked pages.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from bench.common.procs import default_signals
from proposals.matches.cursor import Cursor
from proposals.matches.params import FeedQuery
from proposals.matches.selectors import feed_page
from proposals.matches.sql import FeedRow
from proposals.matches.terms import PAGE_SIZE_DEFAULT
from proposals.models import FeedItem

SORTS = ("newest", "compatibility", "expiring_soon")


@dataclass
class Walk:
    member_id: int
    sort: str
    item_ids: list[list[int]] = field(default_factory=list)  # per page
    match_ids: list[list[str]] = field(default_factory=list)  # per page: match public ids
    cursors: list[str | None] = field(default_factory=list)  # cursors[p - 1] asks for page p
    segments: list[int] = field(default_factory=list)  # expiring_soon: segment of each page's first item
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    open_pending: int = 0

    @property
    def flat(self) -> list[int]:
        return [i for page in self.item_ids for i in page]


def _is_open(item: FeedRow, now: datetime) -> bool:
    return item.status == "pending" and item.expires_at > now


def _order_ok(sort: str, items: Sequence[FeedRow], now: datetime) -> str | None:
    """None if consecutive items are in the sort's order, else what is wrong first."""
    for n, (x, y) in enumerate(itertools.pairwise(items)):
        if sort == "newest":
            ok = (x.created_at, x.id) > (y.created_at, y.id)
        elif sort == "compatibility":
            ok = (x.compatibility, x.id) > (y.compatibility, y.id)
        else:
            ox, oy = _is_open(x, now), _is_open(y, now)
            if ox and oy:
                ok = (x.expires_at, x.id) < (y.expires_at, y.id)
            elif ox != oy:
                ok = ox and not oy
            else:
                ok = (x.created_at, x.id) > (y.created_at, y.id)
        if not ok:
            return f"items {n + 1} and {n + 2} of the walk are out of {sort} order (ids {x.id}, {y.id})"
    return None


def walk(*, user: User, sort: str, depth: int, page_size: int = PAGE_SIZE_DEFAULT) -> Walk:
    result = Walk(member_id=user.pk, sort=sort)
    seen: set[int] = set()
    items_all: list[FeedRow] = []
    cursor: str | None = None
    started = time.monotonic()
    now = timezone.now()
    for page_no in range(1, depth + 1):
        query = FeedQuery(sort=sort, page_size=page_size, cursor=Cursor.decode(cursor, sort=sort) if cursor else None)
        page = feed_page(user=user, query=query)
        now = page.now
        result.cursors.append(cursor)
        ids = [item.id for item in page.items]
        result.item_ids.append(ids)
        result.match_ids.append([str(item.match_public_id) for item in page.items])
        if page.items:
            result.segments.append(0 if sort == "expiring_soon" and _is_open(page.items[0], now) else 1)
        repeats = seen.intersection(ids)
        if repeats:
            result.problems.append(f"page {page_no} repeats {len(repeats)} item(s) of earlier pages")
        seen.update(ids)
        items_all += page.items
        if len(ids) != page_size:
            result.problems.append(f"page {page_no} has {len(ids)} items, not {page_size}")
        if page_no < depth and page.next_cursor is None:
            result.problems.append(f"no next_cursor after page {page_no}")
            break
        cursor = page.next_cursor
    result.seconds = time.monotonic() - started
    wrong = _order_ok(sort, items_all, now)
    if wrong:
        result.problems.append(wrong)
    if sort == "expiring_soon":
        result.open_pending = FeedItem.objects.filter(member=user, status="pending", expires_at__gt=now).count()
    return result


_TRUTH_ORDER = {
    "newest": "created_at DESC, id DESC",
    "compatibility": "compatibility DESC, id DESC",
    "expiring_soon": (
        "(status = 'pending' AND expires_at > %(now)s) DESC,"
        " CASE WHEN status = 'pending' AND expires_at > %(now)s THEN expires_at END ASC,"
        " CASE WHEN status = 'pending' AND expires_at > %(now)s THEN id END ASC,"
        " created_at DESC, id DESC"
    ),
}


def truth_ids(*, member_id: int, sort: str, limit: int, now: datetime) -> list[int]:
    """The first ``limit`` feed item ids of the member in the sort's order, by one plain query."""
    sql = (
        f"SELECT id FROM proposals_feeditem WHERE member_id = %(member)s ORDER BY {_TRUTH_ORDER[sort]} LIMIT %(limit)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"member": member_id, "limit": limit, "now": now})
        return [row[0] for row in cursor.fetchall()]


@dataclass
class MemberWalks:
    walks: dict[str, Walk]
    truth_bad: int = 0
    offset_bad: int = 0
    offset_compared: int = 0
    problems: list[str] = field(default_factory=list)


def member_walked(member_id: int, depth: int, offset_pages: Sequence[int]) -> MemberWalks:
    """Walk one member's feed in every sort and check the walks (see the module docstring)."""
    from bench.feed_support.offset import offset_page

    user = User.objects.get(pk=member_id)
    out = MemberWalks(walks={})
    for sort in SORTS:
        w = walk(user=user, sort=sort, depth=depth)
        out.walks[sort] = w
        out.problems += [f"member {member_id} {sort}: {p}" for p in w.problems]
        now = timezone.now()
        truth = truth_ids(member_id=member_id, sort=sort, limit=depth * PAGE_SIZE_DEFAULT, now=now)
        if truth != w.flat:
            out.truth_bad += 1
            first = next((i for i, (a, b) in enumerate(zip(truth, w.flat, strict=False)) if a != b), None)
            out.problems.append(
                f"member {member_id} {sort}: walked items differ from the SQL order (first at item"
                f" {first if first is None else first + 1}; {len(w.flat)} walked, {len(truth)} in SQL)"
            )
        for page_no in offset_pages:
            if page_no > len(w.item_ids):
                continue
            page, _ = offset_page(user=user, query=FeedQuery(sort=sort, page_size=PAGE_SIZE_DEFAULT), page=page_no)
            out.offset_compared += 1
            if [item.id for item in page.items] != w.item_ids[page_no - 1]:
                out.offset_bad += 1
                out.problems.append(f"member {member_id} {sort}: OFFSET page {page_no} differs from the walked page")
    return out


def _member_walked_job(job: tuple[int, int, tuple[int, ...]]) -> MemberWalks:
    from django.db import connections

    try:
        return member_walked(*job)
    finally:
        connections.close_all()


def walks_checked(
    *,
    member_ids: Sequence[int],
    depth: int,
    offset_pages: Sequence[int],
    procs: int,
    log: Callable[[str], None],
) -> tuple[dict[tuple[int, str], Walk], list[tuple[str, bool, str]]]:
    """Walk every member and sort to ``depth`` in ``procs`` forked processes (each with its own
    database connection); check the walks against SQL and the OFFSET pages."""
    import multiprocessing as mp

    from django.db import connections

    walks: dict[tuple[int, str], Walk] = {}
    problems: list[str] = []
    truth_bad = offset_bad = offset_compared = 0
    started = time.monotonic()
    jobs = [(m, depth, tuple(offset_pages)) for m in member_ids]
    connections.close_all()  # the children must not share the parent's connection
    with mp.get_context("fork").Pool(max(procs, 1), initializer=default_signals) as pool:
        for n, result in enumerate(pool.imap_unordered(_member_walked_job, jobs), 1):
            member = result.walks[SORTS[0]].member_id
            for sort, w in result.walks.items():
                walks[(member, sort)] = w
            truth_bad += result.truth_bad
            offset_bad += result.offset_bad
            offset_compared += result.offset_compared
            problems += result.problems
            if n % 8 == 0 or n == len(jobs):
                log(
                    f"  walked {n}/{len(jobs)} members x {len(SORTS)} sorts to page {depth}"
                    f" ({time.monotonic() - started:.1f}s, {procs} processes)"
                )
    n_walks = len(walks)
    checks = [
        (
            f"cursor walks to page {depth}: full pages, no repeats, in order",
            not any(w.problems for w in walks.values()) and n_walks == len(member_ids) * len(SORTS),
            f"{n_walks} walks, {sum(len(w.item_ids) for w in walks.values()):,} pages"
            + (f"; {sum(len(w.problems) for w in walks.values())} problem(s)" if problems else ""),
        ),
        (
            f"walked items == first {depth * PAGE_SIZE_DEFAULT:,} rows of a plain SQL ORDER BY",
            truth_bad == 0,
            f"{n_walks - truth_bad}/{n_walks} walks equal",
        ),
        (
            f"OFFSET pages {','.join(map(str, offset_pages))} == walked pages (in process)",
            offset_bad == 0 and offset_compared > 0,
            f"{offset_compared - offset_bad}/{offset_compared} pages equal",
        ),
    ]
    for p in problems[:10]:
        log(f"  problem: {p}")
    return walks, checks


# -- EXPLAIN ----------------------------------------------------------------------------------
# The feed indexes a page's ids come from (one per sort and filter); the connections index is
# read by the per-row probes, and the primary keys by the joins.
SORT_INDEXES = (
    "proposals_feed_newest",
    "proposals_feed_compat",
    "proposals_feed_expiring",
    "proposals_feed_status",
    "proposals_feed_status_compat",
    "proposals_feed_event",
    "proposals_feed_source",
)


@dataclass
class PlanLine:
    label: str
    ms: float
    planning_ms: float
    nodes: list[str]
    indexes: list[str]
    sorted_rows: int  # the most rows any Sort node took in
    scans_without_limit: list[str]  # scans of a sort index whose parent node is not a Limit
    buffers: int
    rows_removed: int
    jit: bool

    @property
    def ids_by_index(self) -> bool:
        """The page's ids came from index ranges read under a LIMIT, and only a page's worth of
        rows (two segments of ``page_size + 1`` at most) was ever sorted."""
        return (
            any(i in SORT_INDEXES for i in self.indexes)
            and not self.scans_without_limit
            and self.sorted_rows <= 2 * (PAGE_SIZE_DEFAULT + 1)
        )

    def text(self) -> str:
        sort = f"sorts {self.sorted_rows} rows at most" if self.sorted_rows else "no Sort"
        unlimited = f", {', '.join(self.scans_without_limit)} read without a LIMIT" if self.scans_without_limit else ""
        removed = f", {self.rows_removed:,} rows removed by filter" if self.rows_removed else ""
        jit = ", JIT" if self.jit else ""
        return (
            f"{self.label}: {self.ms:.2f} ms (planning {self.planning_ms:.2f} ms), {sort}{unlimited}, {self.buffers:,}"
            f" buffers{removed}{jit}; "
            f"indexes {', '.join(self.indexes) or '-'}; nodes {' > '.join(self.nodes[:6])}"
        )


def _plan_walk(node: dict[str, Any], out: dict[str, Any], parent: str = "") -> None:
    kind = node.get("Node Type", "?")
    out["nodes"].append(kind)
    children = node.get("Plans", [])
    if kind in ("Sort", "Incremental Sort") and children:
        out["sorted"] = max(out["sorted"], int(children[0].get("Actual Rows", 0) or 0))
    index = node.get("Index Name")
    if index and index not in out["indexes"]:
        out["indexes"].append(index)
    if index in SORT_INDEXES and parent != "Limit":
        out["unlimited"].append(index)
    out["removed"] += int(node.get("Rows Removed by Filter", 0) or 0)
    for child in children:
        _plan_walk(child, out, kind)


def _label(sql: str) -> str:
    text = sql.upper()
    if "PAGE AS (" in text:
        return "feed rows"
    if "COUNT(*)" in text:
        return "count open pending"
    return "other"


def explain_page(*, run: Callable[[], object], repeat: int = 2) -> list[PlanLine]:
    """EXPLAIN (ANALYZE, BUFFERS) every feed-item statement ``run`` executes (captured with its
    parameters); the last of ``repeat`` runs, so a warm cache. Planned afresh here: the server
    runs them prepared (ops.db.prepared_cursor), so their planning time is not paid per request."""
    captured: list[tuple[str, Any]] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        run()
    lines: list[PlanLine] = []
    for sql, params in captured:
        if "proposals_feeditem" not in sql:
            continue
        plan: dict[str, Any] = {}
        for _ in range(repeat):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, SUMMARY, FORMAT JSON) " + sql, params)
                raw = cursor.fetchone()[0]
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
        out: dict[str, Any] = {"nodes": [], "indexes": [], "sorted": 0, "unlimited": [], "removed": 0}
        _plan_walk(plan["Plan"], out)
        top = plan["Plan"]
        lines.append(
            PlanLine(
                label=_label(sql),
                ms=float(plan.get("Execution Time", 0.0)),
                planning_ms=float(plan.get("Planning Time", 0.0)),
                nodes=out["nodes"],
                indexes=out["indexes"],
                sorted_rows=out["sorted"],
                scans_without_limit=out["unlimited"],
                buffers=int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0)),
                rows_removed=out["removed"],
                jit="JIT" in plan,
            )
        )
    return lines
