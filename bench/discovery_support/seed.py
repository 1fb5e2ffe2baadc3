"""Seed the discovery bench's database with set-based SQL: members (``auth_user``) with API
tokens, the Day-0 catalog grown to a realistic size, members' interests and the learning log.

Every table is filled by ``INSERT ... SELECT generate_series`` (``setseed`` first, so a load is
reproducible); nothing goes through the ORM row by row. The learning log is copied from a small
unlogged table of decision templates (each a candidate set of ``event_candidates`` ids of one
category, its epsilon-greedy distribution, the slate, the chosen item and its propensity), in
chunks with a progress bar, with its secondary indexes dropped during the load and rebuilt
after (the foreign-key triggers are skipped for the session: the rows are consistent by
construction, which ``load_checks`` verifies).

A marker table, ``bench_discovery_meta``, records the plan and whether the load completed; a
later run reuses the database when the plan matches (``reusable``), after putting back what a
run adds (``run_leftovers_clear``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.common.db import meta_read as db_meta_read
from bench.common.db import meta_write as db_meta_write

META = "bench_discovery_meta"
TEMPLATES = "bench_discovery_templates"
LAYOUT = 1  # bump when the seed's shape changes: a database seeded by an older layout is not reused
KINDS = ("listing", "service", "event", "community")

Log = Callable[[str], None]


@dataclass(frozen=True)
class SeedPlan:
    members: int = 100_000
    candidates: int = 10_000
    interests: int = 60
    categories: int = 200
    max_interests_per_member: int = 5  # 1..max each (mean about 3), and 1 in 20 members with none
    events: int = 10_000_000
    event_candidates: int = 12  # ids in a logged decision's candidate set (its distribution too)
    token_members: int = 4_000  # members with an API token (the HTTP clients sign in as them)
    seed: int = 12

    def check(self) -> None:
        if self.members < 100 or self.candidates < 100 or self.token_members > self.members:
            raise ValueError("need >= 100 members, >= 100 candidates and token_members <= members")
        if self.interests < 6 or self.categories < 6 or self.event_candidates < 2:
            raise ValueError("need >= 6 interests and categories (the Day-0 catalog) and >= 2 event candidates")


def plan_dict(plan: SeedPlan) -> dict[str, Any]:
    return asdict(plan) | {"layout": LAYOUT}


# -- the marker --------------------------------------------------------------------------------
def meta_read(dsn: str) -> dict[str, Any] | None:
    return db_meta_read(dsn, table=META)


def meta_write(conn: psycopg.Connection[Any], **values: Any) -> None:
    db_meta_write(conn, table=META, **values)


def reusable(*, dsn: str, plan: SeedPlan) -> tuple[bool, str, dict[str, Any] | None]:
    meta = meta_read(dsn)
    if not meta:
        return False, "no seeded bench data there", None
    if not meta.get("complete"):
        return False, "the last seed did not complete", meta
    if meta.get("plan") != plan_dict(plan):
        return False, "it was seeded with other sizes", meta
    return True, f"seeded {meta.get('loaded_at', '?')} in {meta.get('load_seconds', 0):.0f}s", meta


def run_leftovers_clear(dsn: str, *, events_max_id: int) -> int:
    """What a run adds to a seeded database, taken out again: the learning events the
    suggestion requests logged, the discovery jobs and their history. Returns the events
    removed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute("DELETE FROM discovery_learningevent WHERE id > %s", [events_max_id])
        removed = max(cur.rowcount, 0)
        conn.execute("TRUNCATE discovery_discoveryjob, discovery_gap")
        conn.execute("DELETE FROM ops_queuehistory WHERE queue = 'discovery.discoveryjob'")
        conn.execute("DELETE FROM ops_deadletter WHERE queue = 'discovery.discoveryjob'")
    return removed


# -- the load ----------------------------------------------------------------------------------
def _bar(done: int, total: int, started: float) -> str:
    width = 30
    filled = int(width * done / max(total, 1))
    spent = time.monotonic() - started
    rate = done / spent if spent > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else float("nan")
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done / max(total, 1):4.0%} {done:,}/{total:,}"
        f" ({rate:,.0f} rows/s, {spent:.0f}s, ETA {eta:.0f}s)"
    )


def load(*, dsn: str, plan: SeedPlan, log: Log, chunk: int = 500_000) -> dict[str, Any]:
    """Fill the (migrated, Day-0-seeded) bench database; returns what the marker records
    (seconds per phase, the first member id, the last seeded learning event id)."""
    from bench.feed_support.load import indexes_saved

    plan.check()
    phases: dict[str, float] = {}
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '64MB'")
        conn.execute("SET jit = off")
        conn.execute("SELECT setseed(%s)", [(plan.seed % 1000) / 1000 - 0.5])

        def phase(name: str, sql: str, params: Sequence[Any] | None = None) -> int:
            t0 = time.monotonic()
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            rows = max(cur.rowcount, 0)
            phases[name] = time.monotonic() - t0
            log(f"  {name}: {rows:,} rows in {phases[name]:.1f}s")
            return rows

        phase(
            "members (auth_user)",
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined)"
            " SELECT '!', false, 'bench-member-' || i, '', '', 'bench-member-' || i || '@example.test', false, true,"
            " now() - (i %% 1000) * interval '1 hour' FROM generate_series(1, %s) AS i ORDER BY i",
            [plan.members],
        )
        first, last = conn.execute(
            "SELECT min(id), max(id) FROM auth_user WHERE username LIKE 'bench-member-%%'"
        ).fetchone() or (0, 0)
        if last - first + 1 != plan.members:
            raise RuntimeError(f"member ids are not contiguous ({first}..{last})")
        phase(
            "API tokens (authtoken_token)",
            "INSERT INTO authtoken_token (key, user_id, created)"
            " SELECT left(encode(sha256(convert_to(gen_random_uuid()::text, 'UTF8')), 'hex'), 40), id, now()"
            " FROM auth_user WHERE id BETWEEN %s AND %s",
            [first, first + plan.token_members - 1],
        )
        have_i = conn.execute("SELECT count(*) FROM discovery_interest").fetchone()[0]  # type: ignore[index]
        phase(
            "interests",
            "INSERT INTO discovery_interest (slug, name) SELECT 'bench-interest-' || i, 'Bench interest ' || i"
            " FROM generate_series(1, %s) AS i",
            [max(plan.interests - have_i, 0)],
        )
        have_c = conn.execute("SELECT count(*) FROM discovery_category").fetchone()[0]  # type: ignore[index]
        phase(
            "categories",
            "INSERT INTO discovery_category (slug, name) SELECT 'bench-category-' || i, 'Bench category ' || i"
            " FROM generate_series(1, %s) AS i",
            [max(plan.categories - have_c, 0)],
        )
        # Each interest maps to 2..4 categories (neighbouring interests share some): an
        # interest -> its categories -> their candidates, as a real catalog's map would.
        phase(
            "interest -> category map",
            "WITH i AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM discovery_interest),"
            " c AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM discovery_category)"
            " INSERT INTO discovery_interestcategory (interest_id, category_id)"
            " SELECT i.id, c.id FROM i CROSS JOIN LATERAL generate_series(0, 1 + (i.k %% 3)) AS j(n)"
            " JOIN c ON c.k = (i.k * %s + j.n) %% %s ON CONFLICT DO NOTHING",
            [max(plan.categories // plan.interests, 1) + 1, plan.categories],
        )
        have_k = conn.execute("SELECT count(*) FROM discovery_candidate").fetchone()[0]  # type: ignore[index]
        # Categories of uneven sizes (a skewed draw), popularity skewed towards 0, 95 % active.
        phase(
            "candidates",
            "WITH c AS (SELECT array_agg(id ORDER BY id) AS ids FROM discovery_category)"
            " INSERT INTO discovery_candidate (name, category_id, kind, popularity, published_at, active)"
            " SELECT 'Bench candidate ' || i, c.ids[1 + floor(power(random(), 1.4) * cardinality(c.ids))::int],"
            " (%s::text[])[1 + i %% 4], round(power(random(), 2)::numeric, 4)::float8,"
            " now() - random() * interval '365 days', random() < 0.95"
            " FROM c, generate_series(1, %s) AS i",
            [list(KINDS), max(plan.candidates - have_k, 0)],
        )
        phase(
            "members' interests",
            "WITH i AS (SELECT array_agg(id ORDER BY id) AS ids FROM discovery_interest)"
            " INSERT INTO discovery_userinterest (user_id, interest_id, affinity, updated_at)"
            " SELECT u.id, i.ids[1 + floor(power(random(), 1.5) * cardinality(i.ids))::int],"
            " round((0.1 + 0.9 * random())::numeric, 3)::float8, now()"
            " FROM i, auth_user u CROSS JOIN LATERAL generate_series(1, CASE WHEN u.id %% 20 = 0 THEN 0"
            " ELSE 1 + (u.id * 7 + 3) %% %s END) AS j(n)"
            " WHERE u.id BETWEEN %s AND %s ON CONFLICT DO NOTHING",
            [plan.max_interests_per_member, first, last],
        )

        # Decision templates: a candidate set of one category's active candidates, the
        # epsilon-greedy distribution (0.08) over it, the slate in score order, the leader.
        k = plan.event_candidates
        p_top = (1 - 0.08) + 0.08 / k
        p_other = 0.08 / k
        conn.execute(f"DROP TABLE IF EXISTS {TEMPLATES}")
        phase(
            "decision templates (unlogged)",
            f"CREATE UNLOGGED TABLE {TEMPLATES} AS"
            " WITH a AS (SELECT array_agg(id ORDER BY category_id, popularity DESC, id) AS ids"
            "            FROM discovery_candidate WHERE active),"
            " t AS (SELECT t, ARRAY(SELECT a.ids[1 + ((t * 97 + j) %% cardinality(a.ids))]"
            "                        FROM generate_series(0, %s - 1) AS j ORDER BY j) AS ids"
            "       FROM a, generate_series(0, 999) AS t)"
            " SELECT t, to_jsonb(ids) AS candidate_ids,"
            " (SELECT jsonb_object_agg(x::text, CASE WHEN o = 1 THEN %s ELSE %s END)"
            "  FROM unnest(ids) WITH ORDINALITY AS u(x, o)) AS distribution,"
            " to_jsonb(ids[1:12]) AS slate, ids[1] AS chosen_id FROM t",
            [k, p_top, p_other],
        )
        conn.execute(f"CREATE UNIQUE INDEX ON {TEMPLATES} (t)")
        conn.execute(f"ANALYZE {TEMPLATES}")

        saved = indexes_saved(conn, ["discovery_learningevent"])
        t0 = time.monotonic()
        for index in saved:
            conn.execute(index.drop_sql())
        log(f"  dropped {len(saved)} secondary indexes of discovery_learningevent for the load")
        base = conn.execute("SELECT coalesce(max(id), 0) FROM discovery_learningevent").fetchone()[0]  # type: ignore[index]
        conn.execute("SET session_replication_role = replica")
        insert = (
            "INSERT INTO discovery_learningevent (id, decision_id, user_id, surface, policy_version, policy_hash,"
            " candidate_ids, distribution, slate, chosen_id, p_exp, explored, randomized, seed, score, context,"
            " decided_at, reward, rewarded_at)"
            " SELECT %(base)s + g.i, gen_random_uuid(), %(first)s + (g.i * 7919) %% %(members)s, 'suggestions',"
            " 'epsilon_greedy_v1', 'bench0000000000', t.candidate_ids, t.distribution, t.slate, t.chosen_id,"
            " CASE WHEN x.explored THEN %(p_other)s ELSE %(p_top)s END, x.explored, true,"
            " (g.i * 2654435761) %% 9223372036854775807, round(random()::numeric, 4)::float8,"
            ' \'{"personal": true, "safe_mode": false, "epsilon": 0.08}\'::jsonb,'
            " now() - (%(total)s - g.i) * interval '90 days' / %(total)s,"
            " CASE WHEN x.rewarded THEN 1.0 END,"
            " CASE WHEN x.rewarded THEN now() - (%(total)s - g.i) * interval '90 days' / %(total)s"
            "      + interval '5 minutes' END"
            " FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g(i)"
            " JOIN " + TEMPLATES + " t ON t.t = g.i %% 1000"
            " CROSS JOIN LATERAL (SELECT random() < 0.08 AS explored, random() < 0.05 AS rewarded) AS x"
        )
        ev_started = time.monotonic()
        for lo in range(1, plan.events + 1, chunk):
            hi = min(lo + chunk - 1, plan.events)
            conn.execute(
                insert,
                {
                    "base": base,
                    "first": first,
                    "members": plan.members,
                    "p_top": p_top,
                    "p_other": p_other,
                    "total": plan.events,
                    "lo": lo,
                    "hi": hi,
                },
            )
            log(f"  learning events {_bar(hi, plan.events, ev_started)}")
        conn.execute("SET session_replication_role = DEFAULT")
        phases["learning events"] = time.monotonic() - ev_started
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('discovery_learningevent', 'id'),"
            " (SELECT coalesce(max(id), 1) FROM discovery_learningevent))"
        )
        t0 = time.monotonic()
        for index in saved:
            t1 = time.monotonic()
            conn.execute(index.create_sql())
            log(f"  rebuilt {index.name} in {time.monotonic() - t1:.1f}s")
        phases["rebuild indexes"] = time.monotonic() - t0
        conn.execute(f"DROP TABLE {TEMPLATES}")
        t0 = time.monotonic()
        for table in (
            "auth_user",
            "authtoken_token",
            "discovery_interest",
            "discovery_category",
            "discovery_interestcategory",
            "discovery_candidate",
            "discovery_userinterest",
            "discovery_learningevent",
        ):
            # A small seed (quick mode) only needs the statistics; a full one the visibility map too.
            conn.execute(f"{'VACUUM (ANALYZE)' if plan.events >= 1_000_000 else 'ANALYZE'} {table}")
        phases["VACUUM ANALYZE"] = time.monotonic() - t0
        log(f"  VACUUM ANALYZE in {phases['VACUUM ANALYZE']:.1f}s")
        events_max_id = conn.execute("SELECT coalesce(max(id), 0) FROM discovery_learningevent").fetchone()[0]  # type: ignore[index]
    return {
        "phases": phases,
        "load_seconds": time.monotonic() - started,
        "first_member": first,
        "events_max_id": events_max_id,
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def load_checks(dsn: str, plan: SeedPlan, *, first_member: int) -> list[tuple[str, bool, str]]:
    """Counts, and the learning log's references (its foreign-key triggers were off)."""
    with psycopg.connect(dsn, autocommit=True) as conn:

        def one(sql: str, params: Sequence[Any] | None = None) -> Any:
            row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
            return row[0] if row else None

        members = one("SELECT count(*) FROM auth_user WHERE id >= %s", [first_member])
        candidates = one("SELECT count(*) FROM discovery_candidate")
        interests = one("SELECT count(*) FROM discovery_interest")
        categories = one("SELECT count(*) FROM discovery_category")
        mapped = one("SELECT count(*) FROM discovery_interestcategory")
        per_member = one("SELECT avg(n) FROM (SELECT count(*) AS n FROM discovery_userinterest GROUP BY user_id) AS t")
        events = one("SELECT count(*) FROM discovery_learningevent")
        orphans = one(
            "SELECT count(*) FROM discovery_learningevent e WHERE NOT EXISTS"
            " (SELECT 1 FROM auth_user u WHERE u.id = e.user_id)"
            " OR NOT EXISTS (SELECT 1 FROM discovery_candidate c WHERE c.id = e.chosen_id)"
        )
        size = one(
            "SELECT avg(pg_column_size(candidate_ids) + pg_column_size(distribution) + pg_column_size(slate))"
            " FROM discovery_learningevent TABLESAMPLE SYSTEM (0.1)"
        )
        table = one("SELECT pg_size_pretty(pg_total_relation_size('discovery_learningevent'))")
    return [
        (
            "seeded counts",
            members == plan.members
            and candidates == plan.candidates
            and interests == plan.interests
            and categories == plan.categories
            and events >= plan.events,
            f"{members:,} members, {candidates:,} candidates in {categories} categories, {interests} interests"
            f" ({mapped} interest -> category pairs), {float(per_member or 0):.1f} interests per member with any,"
            f" {events:,} learning events ({float(size or 0):.0f} bytes of JSON each, table {table})",
        ),
        ("learning events reference existing members and candidates", orphans == 0, f"{orphans} bad"),
    ]
