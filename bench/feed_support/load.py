"""Load the feed bench's data set with set-based SQL: members, events, 4.1M matches (with
their proposals and conversations) and the two feed rows of every match.

Members are COPYed by ``bench.proposals_support.seed`` (the proposals bench's seeding: 1-6
interests from the vocabulary, privacy 70 % public / 20 % connections / 10 % private). Every
other table is filled by ``INSERT ... SELECT`` from two unlogged staging tables built with
``generate_series`` and ``random()`` (``setseed`` first, so a load is reproducible).

Pairs. The first ``clients x client_matches`` matches pair each *client* member (ids 1..C,
the members the HTTP clients sign in as) with ``client_matches`` distinct other members. The
rest pair non-client members ``a`` and ``a + d`` (mod an odd M), with, for every ``a``, a
different circular distance ``1 <= d <= (M - 1) / 2`` per round: so no unordered pair occurs
twice, which the partial unique constraints on ``Match(event, member_a, member_b)`` and on
``Proposal.pair_hash`` (approved) need, with no ``ON CONFLICT`` and no retry. ``member_a`` is
the lower id, as ``event_match_create`` and proposals store it.

Match ids follow ``created_at`` (as rows inserted over a year would), so one member's rows are
spread over the whole heap, not packed together.

Indexes: with ``index_mode="drop"`` the secondary indexes and unique constraints of the four
big tables are dropped before the load and recreated from their saved definitions afterwards
(primary keys stay). Foreign keys stay defined; their triggers are skipped during the load
with ``session_replication_role = replica`` (superuser, as ``pg_restore --disable-triggers``),
and the rows are consistent by construction (checked after the load).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from bench.common.db import meta_read as db_meta_read
from bench.common.db import meta_write as db_meta_write

BIG_TABLES = ("proposals_proposal", "proposals_match", "proposals_conversation", "proposals_feeditem")
STAGE_RAW = "bench_feed_raw"
STAGE = "bench_feed_stage"
META = "bench_feed_meta"

# Status mixes (the remainder is expired). "stale" = pending past its deadline that the expiry
# sweep has not reached yet: the feed shows it as expired.
MIX_STANDARD = {"pending": 0.20, "stale": 0.01, "accepted": 0.25, "rejected": 0.10}
MIX_PENDING_HEAVY = {"pending": 0.45, "stale": 0.01, "accepted": 0.20, "rejected": 0.08}
EVENT_SHARE = 0.75  # the rest come from community proposals (approved Proposal rows)
TTL_DAYS = 9  # expires_at - created_at of every match here


@dataclass(frozen=True)
class LoadPlan:
    members: int = 200_000
    clients: int = 32
    client_matches: int = 6_500
    matches: int = 4_100_000
    events: int = 300
    seed: int = 7

    def check(self) -> None:
        rest_members = self.members - self.clients
        if self.clients < 1 or self.client_matches < 1 or rest_members < 1000:
            raise ValueError("need at least 1 client, 1 client match and 1,000 other members")
        if self.client_matches > rest_members:
            raise ValueError("client_matches must not exceed the number of other members")
        if self.matches < self.clients * self.client_matches:
            raise ValueError("matches must cover the clients' matches")
        modulus = rest_members if rest_members % 2 else rest_members - 1
        rounds = math.ceil((self.matches - self.clients * self.client_matches) / modulus)
        if rounds > (modulus - 1) // 2:
            raise ValueError("too many matches for this many members (pairs would repeat)")

    def client_is_pending_heavy(self, client_id: int) -> bool:
        """Even client ids have the pending-heavy mix: page 100 of expiring_soon is then among
        the open pending matches (index proposals_feed_expiring); odd ids: past them."""
        return client_id % 2 == 0


@dataclass
class LoadReport:
    phases: list[tuple[str, float, int]] = field(default_factory=list)  # name, seconds, rows
    total_s: float = 0.0
    index_mode: str = "drop"

    def add(self, name: str, seconds: float, rows: int) -> None:
        self.phases.append((name, seconds, rows))


Log = Callable[[str], None]


def _one(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] | None = None) -> Any:
    row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


# -- metadata (for --reuse) -------------------------------------------------------------------
def meta_read(dsn: str) -> dict[str, Any] | None:
    return db_meta_read(dsn, table=META)


def meta_write(conn: psycopg.Connection[Any], **values: Any) -> None:
    db_meta_write(conn, table=META, **values)


def plan_dict(plan: LoadPlan) -> dict[str, Any]:
    return asdict(plan) | {
        "mix_standard": MIX_STANDARD,
        "mix_pending_heavy": MIX_PENDING_HEAVY,
        "event_share": EVENT_SHARE,
        "layout": 3,
    }


# -- indexes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedIndex:
    table: str
    name: str
    kind: str  # "constraint" (a unique constraint) or "index"
    definition: str

    def create_sql(self) -> str:
        if self.kind == "constraint":
            return f'ALTER TABLE "{self.table}" ADD CONSTRAINT "{self.name}" {self.definition}'
        return self.definition

    def drop_sql(self) -> str:
        if self.kind == "constraint":
            return f'ALTER TABLE "{self.table}" DROP CONSTRAINT "{self.name}"'
        return f'DROP INDEX "{self.name}"'


def indexes_saved(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[SavedIndex]:
    """The unique constraints and secondary indexes of ``tables`` (primary keys excluded)."""
    saved = [
        SavedIndex(table, name, "constraint", definition)
        for table, name, definition in conn.execute(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid WHERE c.contype = 'u' AND t.relname = ANY(%s)"
            " ORDER BY t.relname, c.conname",
            [list(tables)],
        ).fetchall()
    ]
    saved += [
        SavedIndex(table, name, "index", definition)
        for table, name, definition in conn.execute(
            "SELECT t.relname, i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " WHERE t.relname = ANY(%s) AND NOT x.indisprimary"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = t.oid)"
            " ORDER BY t.relname, i.relname",
            [list(tables)],
        ).fetchall()
    ]
    return saved


def index_names(conn: psycopg.Connection[Any], tables: Sequence[str]) -> set[str]:
    rows = conn.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = ANY(%s)",
        [list(tables)],
    ).fetchall()
    return {r[0] for r in rows}


# -- the load ---------------------------------------------------------------------------------
def _kind_sql(mix: dict[str, float]) -> str:
    edges = []
    total = 0.0
    for kind in ("pending", "stale", "accepted", "rejected"):
        total += mix[kind]
        edges.append(f"WHEN u_status < {total:.6f} THEN '{kind}'")
    return f"CASE {' '.join(edges)} ELSE 'expired' END"


def _raw_sql(plan: LoadPlan) -> str:
    c = plan.clients
    k = plan.client_matches
    ck = c * k
    mr = plan.members - c  # non-client members: ids c+1 .. members
    kstep = mr // k
    mo = mr if mr % 2 else mr - 1  # odd modulus for the circular-distance pairing
    h = (mo - 1) // 2
    rounds = max(math.ceil((plan.matches - ck) / mo), 1)
    rstep = h // rounds
    # All numbers are ints computed here; nothing from outside reaches the SQL text.
    return f"""
        CREATE UNLOGGED TABLE {STAGE_RAW} AS
        SELECT p.i, p.x, p.y, p.grp,
               random() AS u_status, random() AS u_score, random() AS u_time, random() AS u_time2,
               random() AS u_source, random() AS u_event, random() AS u_dec
        FROM (
            SELECT g.i,
                   CASE WHEN g.i <= {ck} THEN q.client ELSE {c} + 1 + q.a END AS x,
                   CASE WHEN g.i <= {ck}
                        THEN {c} + 1 + (((q.client * 104729) % {mr}) + q.kk * {kstep}) % {mr}
                        ELSE {c} + 1 + (q.a + 1 + ((q.a * 7919) % {h} + q.r * {rstep}) % {h}) % {mo}
                   END AS y,
                   CASE WHEN g.i > {ck} THEN 0 WHEN q.client % 2 = 0 THEN 2 ELSE 1 END AS grp
            FROM generate_series(1::bigint, {plan.matches}::bigint) AS g(i)
            CROSS JOIN LATERAL (
                SELECT 1 + (g.i - 1) / {k} AS client, (g.i - 1) % {k} AS kk,
                       (g.i - {ck} - 1) % {mo} AS a, (g.i - {ck} - 1) / {mo} AS r
            ) AS q
        ) AS p
    """


def _stage_sql(plan: LoadPlan, now: datetime) -> str:
    kind = f"CASE WHEN grp = 2 THEN {_kind_sql(MIX_PENDING_HEAVY)} ELSE {_kind_sql(MIX_STANDARD)} END"
    t = f"'{now.isoformat()}'::timestamptz"
    ttl = f"interval '{TTL_DAYS} days'"
    return f"""
        CREATE UNLOGGED TABLE {STAGE} AS
        SELECT row_number() OVER (ORDER BY created_at, i) AS id, s.*
        FROM (
            SELECT r.i, least(r.x, r.y) AS a, greatest(r.x, r.y) AS b, k.kind,
                   CASE WHEN k.kind = 'stale' THEN 'pending' ELSE k.kind END AS status,
                   round(r.u_score::numeric, 3)::float8 AS compat,
                   t2.created_at, t2.expires_at,
                   CASE WHEN k.kind IN ('accepted', 'rejected') THEN t2.created_at + r.u_time2 * interval '1 day'
                        WHEN k.kind = 'expired' THEN t2.expires_at + interval '10 seconds' END AS decided_at,
                   CASE WHEN r.u_source < {EVENT_SHARE} THEN 'event' ELSE 'proposal' END AS source,
                   CASE WHEN r.u_source < {EVENT_SHARE} THEN 1 + floor(r.u_event * {plan.events})::bigint END
                       AS event_id,
                   r.u_dec
            FROM {STAGE_RAW} r
            CROSS JOIN LATERAL (SELECT {kind} AS kind) k
            CROSS JOIN LATERAL (
                SELECT CASE k.kind
                           WHEN 'pending'
                               THEN date_trunc('minute', {t} + interval '1 day' + r.u_time * interval '7 days')
                           WHEN 'stale' THEN {t} - r.u_time * interval '1 day'
                       END AS exp_fixed,
                       CASE k.kind
                           WHEN 'expired' THEN {t} - {ttl} - r.u_time * interval '356 days'
                           WHEN 'accepted' THEN {t} - interval '1 day' - r.u_time * interval '364 days'
                           WHEN 'rejected' THEN {t} - interval '1 day' - r.u_time * interval '364 days'
                       END AS created_fixed
            ) t1
            CROSS JOIN LATERAL (
                SELECT coalesce(t1.created_fixed, t1.exp_fixed - {ttl}) AS created_at,
                       coalesce(t1.exp_fixed, t1.created_fixed + {ttl}) AS expires_at
            ) t2
        ) s
    """


# Each statement is run per id range (progress, and no single multi-minute statement).
_PROPOSALS_SQL = f"""
    INSERT INTO proposals_proposal (id, public_id, member_a_id, member_b_id, pair_hash, compatibility, status,
        voters_required, approve_threshold, yes_count, no_count, created_at, voting_started_at, deadline, finalized_at)
    SELECT id, gen_random_uuid(), a, b, left(encode(sha256(convert_to(a::text || ':' || b::text, 'UTF8')), 'hex'), 32),
           compat, 'approved', 10, 5, 5 + (id %% 3)::int, (id %% 4)::int, created_at - interval '2 hours',
           created_at - interval '1 hour', created_at, created_at
    FROM {STAGE} WHERE source = 'proposal' AND id BETWEEN %s AND %s
"""
_MATCHES_SQL = f"""
    INSERT INTO proposals_match (id, public_id, source, proposal_id, event_id, member_a_id, member_b_id,
        compatibility_score, status, decision_a, decision_b, responded_at_a, responded_at_b,
        created_at, expires_at, decided_at)
    SELECT id, gen_random_uuid(), source, CASE WHEN source = 'proposal' THEN id END, event_id, a, b, compat, status,
           CASE WHEN kind IN ('accepted') THEN 'accept'
                WHEN kind = 'rejected' THEN CASE WHEN u_dec < 0.5 THEN 'reject' ELSE 'accept' END
                WHEN u_dec < 0.3 THEN 'accept' ELSE '' END,
           CASE WHEN kind = 'accepted' THEN 'accept'
                WHEN kind = 'rejected' THEN CASE WHEN u_dec < 0.5 THEN '' ELSE 'reject' END
                ELSE '' END,
           CASE WHEN kind = 'accepted' THEN created_at + (decided_at - created_at) * u_dec
                WHEN kind = 'rejected' THEN CASE WHEN u_dec < 0.5 THEN decided_at
                                                 ELSE created_at + (decided_at - created_at) * 0.5 END
                WHEN u_dec < 0.3 THEN created_at + interval '1 hour' * (1 + u_dec) END,
           CASE WHEN kind = 'accepted' THEN decided_at
                WHEN kind = 'rejected' AND u_dec >= 0.5 THEN decided_at END,
           created_at, expires_at, decided_at
    FROM {STAGE} WHERE id BETWEEN %s AND %s
"""
_CONVERSATIONS_SQL = f"""
    INSERT INTO proposals_conversation (id, public_id, match_id, created_at, closed_at)
    SELECT id, gen_random_uuid(), id, created_at,
           CASE WHEN kind IN ('rejected', 'expired') THEN decided_at END
    FROM {STAGE} WHERE id BETWEEN %s AND %s
"""
_FEED_SQL = f"""
    INSERT INTO proposals_feeditem (id, member_id, match_id, other_id, status, compatibility, created_at, expires_at,
        event_id, source)
    SELECT 2 * s.id - 1 + v.side, v.member, s.id, v.other, s.status, s.compat, s.created_at, s.expires_at,
           s.event_id, s.source
    FROM {STAGE} s CROSS JOIN LATERAL (VALUES (0, s.a, s.b), (1, s.b, s.a)) AS v(side, member, other)
    WHERE s.id BETWEEN %s AND %s
"""


def load(*, dsn: str, plan: LoadPlan, now: datetime, index_mode: str, log: Log, chunk: int = 1_000_000) -> LoadReport:
    """Fill the (migrated, empty) bench database. Members go through Django's connection
    (``bench.proposals_support.seed``); the rest through ``dsn``."""
    from bench.proposals_support.seed import members_draw, members_seed

    plan.check()
    report = LoadReport(index_mode=index_mode)
    started = time.monotonic()

    t0 = time.monotonic()
    members = members_draw(count=plan.members, seed=plan.seed)
    members_seed(members=members, progress=lambda n: log(f"  members: {n:,}/{plan.members:,} profiles COPYed"))
    report.add("members (auth_user + proposals_profile, COPY)", time.monotonic() - t0, plan.members)
    log(f"  members: {plan.members:,} in {time.monotonic() - t0:.1f}s")
    del members

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET jit = off")

        def phase(name: str, sql: str, params: Sequence[Any] | None = None) -> int:
            t = time.monotonic()
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            rows = max(cur.rowcount, 0)
            spent = time.monotonic() - t
            report.add(name, spent, rows)
            rate = f", {rows / spent:,.0f} rows/s" if rows and spent > 0 else ""
            log(f"  {name}: {rows:,} rows in {spent:.1f}s{rate}")
            return rows

        t = f"'{now.isoformat()}'::timestamptz"
        phase(
            "events",
            f"INSERT INTO proposals_event (id, name, starts_at, ends_at, created_at)"
            f" SELECT i, 'Bench event ' || i, {t} - interval '365 days' + (i * interval '1 day' * 365 / {plan.events}),"
            f" {t} - interval '365 days' + (i * interval '1 day' * 365 / {plan.events}) + interval '6 hours',"
            f" {t} - interval '400 days' FROM generate_series(1, {plan.events}) AS i",
        )

        saved: list[SavedIndex] = []
        if index_mode == "drop":
            t0 = time.monotonic()
            saved = indexes_saved(conn, BIG_TABLES)
            for index in saved:
                conn.execute(index.drop_sql())
            report.add("drop secondary indexes and unique constraints", time.monotonic() - t0, len(saved))
            log(f"  dropped {len(saved)} secondary indexes / unique constraints of {', '.join(BIG_TABLES)}")

        conn.execute("SELECT setseed(%s)", [((plan.seed * 7919) % 10_000) / 10_000 - 0.5])
        phase("staging: pairs and random draws (unlogged)", _raw_sql(plan))
        phase("staging: statuses, times, ids in created_at order (unlogged)", _stage_sql(plan, now))
        conn.execute(f"DROP TABLE {STAGE_RAW}")
        conn.execute(f"CREATE INDEX ON {STAGE} USING brin (id)")
        conn.execute(f"ANALYZE {STAGE}")

        # FK triggers off for this session only (the rows are consistent by construction).
        conn.execute("SET session_replication_role = replica")
        for name, sql in (
            ("proposals (approved, one per proposal-sourced match)", _PROPOSALS_SQL),
            ("matches", _MATCHES_SQL),
            ("conversations (one per match)", _CONVERSATIONS_SQL),
            ("feed items (two per match)", _FEED_SQL),
        ):
            t0 = time.monotonic()
            rows = 0
            for lo in range(1, plan.matches + 1, chunk):
                hi = min(lo + chunk - 1, plan.matches)
                cur = conn.execute(sql, [lo, hi])
                rows += max(cur.rowcount, 0)
                spent = time.monotonic() - t0
                log(f"  {name}: {rows:,} rows, {spent:.1f}s ({rows / max(spent, 1e-9):,.0f} rows/s)")
            report.add(name, time.monotonic() - t0, rows)
        conn.execute("SET session_replication_role = DEFAULT")

        for table in (*BIG_TABLES, "proposals_event"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
            )

        if saved:
            t0 = time.monotonic()
            for index in saved:
                t1 = time.monotonic()
                conn.execute(index.create_sql())
                log(f"  recreated {index.table}.{index.name} in {time.monotonic() - t1:.1f}s")
            report.add(f"recreate {len(saved)} indexes / unique constraints", time.monotonic() - t0, len(saved))

        conn.execute(f"DROP TABLE {STAGE}")
        t0 = time.monotonic()
        for table in (*BIG_TABLES, "proposals_event", "auth_user", "proposals_profile"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        report.add("VACUUM ANALYZE", time.monotonic() - t0, 0)
        log(f"  VACUUM ANALYZE in {time.monotonic() - t0:.1f}s")
    report.total_s = time.monotonic() - started
    return report


def load_checks(dsn: str, plan: LoadPlan, *, min_items: int) -> list[tuple[str, bool, str]]:
    """Counts and referential consistency of what was loaded (the FK triggers were off); every
    client member with at least ``min_items`` feed items (the deep page's last item)."""
    checks: list[tuple[str, bool, str]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET jit = off")
        matches = _one(conn, "SELECT count(*) FROM proposals_match")
        feed = _one(conn, "SELECT count(*) FROM proposals_feeditem")
        conversations = _one(conn, "SELECT count(*) FROM proposals_conversation")
        checks.append(
            (
                "loaded counts",
                matches == plan.matches and feed == 2 * plan.matches and conversations == plan.matches,
                f"{matches:,} matches, {feed:,} feed items, {conversations:,} conversations",
            )
        )
        orphans = _one(
            conn,
            "SELECT (SELECT count(*) FROM proposals_match m WHERE m.member_b_id > %s OR m.member_a_id < 1"
            " OR m.member_a_id >= m.member_b_id)"
            " + (SELECT count(*) FROM proposals_match m WHERE m.source = 'proposal' AND NOT EXISTS"
            "    (SELECT 1 FROM proposals_proposal p WHERE p.id = m.proposal_id AND p.member_a_id = m.member_a_id"
            "     AND p.member_b_id = m.member_b_id))"
            " + (SELECT count(*) FROM proposals_match m WHERE m.event_id IS NOT NULL AND m.event_id > %s)",
            [plan.members, plan.events],
        )
        checks.append(("matches reference existing members, proposals and events", orphans == 0, f"{orphans} bad"))
        per_client = conn.execute(
            "SELECT min(n), max(n) FROM (SELECT member_id, count(*) AS n FROM proposals_feeditem"
            " WHERE member_id <= %s GROUP BY member_id) t",
            [plan.clients],
        ).fetchone()
        assert per_client is not None
        checks.append(
            (
                f"every client member has >= {min_items:,} feed items",
                (per_client[0] or 0) >= min_items,
                f"{per_client[0]:,} .. {per_client[1]:,} feed items per client member",
            )
        )
        mirror = _one(
            conn,
            "SELECT count(*) FROM proposals_feeditem f JOIN proposals_match m ON m.id = f.match_id"
            " WHERE f.member_id <= %s AND NOT (f.status = m.status AND f.compatibility = m.compatibility_score"
            " AND f.created_at = m.created_at AND f.expires_at = m.expires_at"
            " AND f.event_id IS NOT DISTINCT FROM m.event_id AND f.source = m.source"
            " AND ((f.member_id = m.member_a_id AND f.other_id = m.member_b_id)"
            "   OR (f.member_id = m.member_b_id AND f.other_id = m.member_a_id)))",
            [plan.clients],
        )
        checks.append(("client members' feed items copy their matches", mirror == 0, f"{mirror} differ"))
    return checks


def status_mix(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT CASE WHEN status = 'pending' AND expires_at <= now() THEN 'pending (past deadline)'"
            " ELSE status END, count(*) FROM proposals_match GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        sources = conn.execute("SELECT source, count(*) FROM proposals_match GROUP BY 1 ORDER BY 1").fetchall()
    total = sum(n for _, n in rows) or 1
    mix = ", ".join(f"{status} {n / total:.0%}" for status, n in rows)
    src = ", ".join(f"{source} {n:,}" for source, n in sources)
    return f"{mix}; {src}"
