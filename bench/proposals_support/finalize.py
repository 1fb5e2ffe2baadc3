"""Part 3: N voting proposals whose deadlines fall at one instant, finalized by worker
processes; lag per proposal from the database."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection, transaction

from bench.common.db import one, rows
from bench.proposals_support.state import Check, scale_applied


@dataclass
class Scenario:
    ids: list[int]
    approved_expected: set[int]
    open_s: float
    votes: int


def scenario_build(*, count: int, seed: int) -> Scenario:
    """``count`` disjoint queued pairs (inserted directly), opened for voting by the real
    ``proposals_open()`` (least-loaded voters), then random votes written as ``vote_cast``
    would write them (vote rows, ``voted``, the voter's load, the counters). Votes stay
    below the approve threshold so nothing is approved early; about half the proposals end
    with more yes than no."""
    from proposals.models import Profile, Proposal, ProposalStatus, pair_hash_of
    from proposals.voting.compat import compatibility_score
    from proposals.voting.services import proposals_open

    rng = random.Random(seed)
    active = list(Profile.objects.filter(is_active=True).values_list("user_id", "interest_mask", "privacy"))
    chosen = rng.sample(active, 2 * count)
    queued = []
    for i in range(count):
        (a, ma, pa), (b, mb, pb) = sorted((chosen[2 * i], chosen[2 * i + 1]))
        queued.append(
            Proposal(
                member_a_id=a,
                member_b_id=b,
                pair_hash=pair_hash_of(a, b),
                compatibility=compatibility_score(mask_a=ma, mask_b=mb, both_public=pa == pb == "public"),
                status=ProposalStatus.QUEUED,
                voters_required=settings.PROPOSALS_VOTERS_PER_PROPOSAL,
                approve_threshold=settings.PROPOSALS_APPROVE_THRESHOLD,
            )
        )
    Proposal.objects.bulk_create(queued)
    with scale_applied(queue_low=count, queue_high=count, voting_low=count, voting_high=count):
        started = time.perf_counter()
        opened = proposals_open()
        open_s = time.perf_counter() - started
    if opened != count:
        raise RuntimeError(f"proposals_open opened {opened} of {count}")
    ids = sorted(Proposal.objects.filter(status=ProposalStatus.VOTING).values_list("id", flat=True))
    assignments: dict[int, list[tuple[int, int]]] = {}
    for aid, pid, voter in rows(
        "SELECT id, proposal_id, voter_id FROM proposals_proposalvoter ORDER BY proposal_id, id"
    ):
        assignments.setdefault(pid, []).append((aid, voter))
    threshold = settings.PROPOSALS_APPROVE_THRESHOLD
    vote_rows: list[tuple[int, int, int, str]] = []
    counts: list[tuple[int, int, int]] = []
    approved: set[int] = set()
    for pid in ids:
        voters = assignments[pid]
        yes = rng.randint(0, min(threshold - 1, len(voters)))
        no = rng.randint(0, min(len(voters) - yes, threshold + 1))
        for aid, voter in voters[:yes]:
            vote_rows.append((aid, pid, voter, "yes"))
        for aid, voter in voters[yes : yes + no]:
            vote_rows.append((aid, pid, voter, "no"))
        counts.append((pid, yes, no))
        if yes > no:
            approved.add(pid)
    with transaction.atomic():
        raw = connection.connection
        assert raw is not None
        with raw.cursor() as cursor:
            with cursor.copy("COPY proposals_vote (assignment_id, proposal_id, voter_id, choice) FROM STDIN") as copy:
                for row in vote_rows:
                    copy.write_row(row)
            cursor.execute(
                "UPDATE proposals_proposalvoter SET voted = true WHERE id = ANY(%s)", ([r[0] for r in vote_rows],)
            )
            cursor.execute(
                "UPDATE proposals_profile f SET open_assignments = f.open_assignments - c.n FROM"
                " (SELECT voter_id, count(*) n FROM unnest(%s::bigint[]) voter_id GROUP BY voter_id) c"
                " WHERE f.user_id = c.voter_id",
                ([r[2] for r in vote_rows],),
            )
            cursor.execute(
                "UPDATE proposals_proposal p SET yes_count = c.y, no_count = c.n FROM"
                " unnest(%s::bigint[], %s::int[], %s::int[]) c(id, y, n) WHERE p.id = c.id",
                ([c[0] for c in counts], [c[1] for c in counts], [c[2] for c in counts]),
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE proposals_proposal")
        cursor.execute("ANALYZE proposals_proposalvoter")
        cursor.execute("ANALYZE proposals_vote")
    return Scenario(ids=ids, approved_expected=approved, open_s=open_s, votes=len(vote_rows))


SNAPSHOT = (
    ("proposals_proposal", "bench_snap_proposal"),
    ("proposals_proposalvoter", "bench_snap_voter"),
    ("proposals_vote", "bench_snap_vote"),
)


def scenario_snapshot() -> None:
    """Keep the built scenario in side tables so every finalizer starts from the same rows."""
    with connection.cursor() as cursor:
        for table, snap in SNAPSHOT:
            cursor.execute(f"DROP TABLE IF EXISTS {snap}")
            cursor.execute(f"CREATE TABLE {snap} AS SELECT * FROM {table}")
        cursor.execute("DROP TABLE IF EXISTS bench_snap_load")
        cursor.execute(
            "CREATE TABLE bench_snap_load AS SELECT user_id, open_assignments FROM proposals_profile"
            " WHERE open_assignments <> 0"
        )


def scenario_restore() -> None:
    """Back to the snapshot: empty tables, the scenario's rows, its voter loads, no audit."""
    from bench.proposals_support.state import state_reset

    state_reset()
    with connection.cursor() as cursor:
        for table, snap in SNAPSHOT:
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {snap}")
        cursor.execute(
            "UPDATE proposals_profile f SET open_assignments = s.open_assignments FROM bench_snap_load s"
            " WHERE f.user_id = s.user_id"
        )
        cursor.execute("TRUNCATE bench_status_audit")
        cursor.execute("VACUUM ANALYZE proposals_profile")
        for table, _ in SNAPSHOT:
            cursor.execute(f"ANALYZE {table}")


def deadlines_set(*, ids: list[int], lead_s: float) -> float:
    """Every deadline := one instant ``lead_s`` from the database's now; returns it (epoch)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE proposals_proposal SET deadline = date_trunc('milliseconds', now()) + %s * interval '1 second'"
            " WHERE id = ANY(%s) RETURNING extract(epoch FROM deadline)",
            [lead_s, ids],
        )
        instants = {float(r[0]) for r in cursor.fetchall()}
        cursor.execute("TRUNCATE bench_status_audit")
    assert len(instants) == 1
    return instants.pop()


@dataclass
class Seen:
    """When each proposal was first seen finalized by a poller (the database's clock), i.e.
    when its finalization had committed."""

    at: dict[int, float] = field(default_factory=dict)
    polls: int = 0
    timed_out: bool = False


def poll_until_final(*, dsn: str, ids: list[int], until: float, every_s: float = 0.05) -> Seen:
    seen = Seen()
    pending = set(ids)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        while pending:
            if time.time() > until:
                seen.timed_out = True
                break
            result = conn.execute(
                "SELECT id, extract(epoch FROM clock_timestamp()) FROM proposals_proposal"
                " WHERE id = ANY(%s) AND status <> 'voting'",
                (list(pending),),
            ).fetchall()
            seen.polls += 1
            for pid, at in result:
                seen.at[int(pid)] = float(at)
                pending.discard(int(pid))
            if pending:
                time.sleep(every_s)
    return seen


@dataclass
class Calls:
    n: int = 0
    finalized: int = 0
    errors: list[str] = field(default_factory=list)
    busy_s: list[float] = field(default_factory=list)  # durations of calls that finalized something
    busy_start: list[float] = field(default_factory=list)  # their start times (epoch)
    per_process: list[int] = field(default_factory=list)


def calls_read(paths: list[Path]) -> Calls:
    calls = Calls()
    for path in paths:
        mine = 0
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                calls.n += 1
                calls.finalized += int(record["n"])
                mine += int(record["n"])
                if record["error"]:
                    calls.errors.append(record["error"])
                if record["n"]:
                    calls.busy_s.append(record["end"] - record["start"])
                    calls.busy_start.append(record["start"])
        calls.per_process.append(mine)
    return calls


@dataclass
class Lags:
    stamped: np.ndarray  # finalized_at - deadline, seconds
    visible: np.ndarray  # first seen finalized - deadline, seconds
    statement: np.ndarray  # the status UPDATE's clock (audit trigger) - deadline


def lags_and_checks(*, scenario: Scenario, deadline: float, seen: Seen, calls: Calls) -> tuple[Lags, list[Check]]:
    ids = scenario.ids
    data = rows(
        "SELECT id, status, yes_count, no_count, extract(epoch FROM finalized_at) FROM proposals_proposal"
        " WHERE id = ANY(%s)",
        [ids],
    )
    audit: dict[int, list[tuple[str, str, float]]] = {}
    for pid, old, new, at in rows(
        "SELECT proposal_id, old, new, extract(epoch FROM at) FROM bench_status_audit WHERE proposal_id = ANY(%s)"
        " ORDER BY at",
        [ids],
    ):
        audit.setdefault(int(pid), []).append((old, new, float(at)))
    stamped, visible, statement = [], [], []
    wrong_status, not_final = 0, 0
    for pid, status, yes, no, finalized_at in data:
        if status in ("voting", "queued") or finalized_at is None:
            not_final += 1
            continue
        stamped.append(float(finalized_at) - deadline)
        if pid in seen.at:
            visible.append(seen.at[pid] - deadline)
        changes = [c for c in audit.get(pid, []) if c[0] == "voting"]
        if changes:
            statement.append(changes[0][2] - deadline)
        expected = "approved" if pid in scenario.approved_expected else "rejected"
        if status != expected or (yes > no) != (status == "approved"):
            wrong_status += 1
    once = sum(1 for pid in ids if len([c for c in audit.get(pid, []) if c[0] == "voting"]) == 1)
    more = sum(1 for pid in ids if len(audit.get(pid, [])) > 1)
    approved = sum(1 for r in data if r[1] == "approved")
    matches = one("SELECT count(*) FROM proposals_match WHERE proposal_id = ANY(%s)", [ids])
    conversations = one(
        "SELECT count(*) FROM proposals_conversation c JOIN proposals_match m ON m.id = c.match_id"
        " WHERE m.proposal_id = ANY(%s)",
        [ids],
    )
    early = sum(1 for lag in stamped if lag < 0)
    drift = one(
        "SELECT count(*) FROM proposals_profile f LEFT JOIN (SELECT v.voter_id, count(*) n FROM"
        " proposals_proposalvoter v JOIN proposals_proposal p ON p.id = v.proposal_id WHERE p.status = 'voting'"
        " AND NOT v.voted GROUP BY v.voter_id) c ON c.voter_id = f.user_id WHERE f.open_assignments <> coalesce(c.n, 0)"
    )
    n = len(ids)
    checks: list[Check] = [
        ("every proposal finalized", not_final == 0 and not seen.timed_out, f"{n - not_final}/{n}"),
        (
            "each status changed exactly once (audit trigger)",
            once == n and more == 0,
            f"{once}/{n} with one voting->final change, {more} with more than one change",
        ),
        ("outcome follows the votes (yes > no approves)", wrong_status == 0, f"{wrong_status} wrong"),
        (
            "one Match (and Conversation) per approval",
            matches == approved == len(scenario.approved_expected) and conversations == matches,
            f"{approved} approved, {matches} matches, {conversations} conversations,"
            f" {len(scenario.approved_expected)} expected",
        ),
        (
            "the finalizers' own counts add up to N (nobody finalized twice)",
            calls.finalized == n,
            f"{calls.finalized} = {' + '.join(str(x) for x in calls.per_process)}",
        ),
        ("nothing finalized before its deadline", early == 0, f"{early} early"),
        ("voter loads released (open_assignments agrees with the assignments)", drift == 0, f"{drift} profiles off"),
        ("no finalizer call raised", not calls.errors, "; ".join(sorted(set(calls.errors))[:3]) or "none"),
    ]
    return Lags(np.array(stamped), np.array(visible), np.array(statement)), checks
