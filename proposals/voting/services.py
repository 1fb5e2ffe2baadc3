"""Writes of the voting loop: the generation queue, opening proposals for voting, votes,
and finalization (an approved proposal becomes a match). Every public function owns its
transaction; the locking order they share is in ops/LOCKING.md."""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, Q, Value
from django.db.models.functions import Greatest, Now

from matchplatform.exceptions import Conflict, ErrorCode, Forbidden, InvalidInput, NotFound
from proposals.ids import public_id_parse
from proposals.matches.services import MatchNew, matches_create
from proposals.models import (
    OPEN_PAIR_STATUSES,
    Match,
    Profile,
    Proposal,
    ProposalStatus,
    ProposalVoter,
    SystemMetric,
    Vote,
    pair_hash_of,
)
from proposals.voting.compat import pairs_best

logger = logging.getLogger(__name__)


# -- the generation queue -------------------------------------------------------------
def _members_busy() -> Q:
    """Members who are one side of a queued or voting proposal."""
    busy = Proposal.objects.filter(status__in=[ProposalStatus.QUEUED, ProposalStatus.VOTING])
    return Q(user_id__in=busy.values("member_a")) | Q(user_id__in=busy.values("member_b"))


def _pairs_blocked(*, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of these pairs, those that are open (queued, voting, approved) or were turned down
    within the cool-down."""
    if not pairs:
        return set()
    by_hash = {pair_hash_of(a, b): (a, b) for a, b in pairs}
    cutoff = Now() - timedelta(days=settings.PROPOSALS_COOLDOWN_DAYS)
    hashes = Proposal.objects.filter(
        Q(status__in=OPEN_PAIR_STATUSES) | Q(status=ProposalStatus.REJECTED, finalized_at__gte=cutoff),
        pair_hash__in=list(by_hash),
    ).values_list("pair_hash", flat=True)
    blocked = {by_hash[h] for h in hashes}
    # A match that expired or was turned down counts as the pair's rejection too.
    expired = Match.objects.filter(
        status__in=[Match.Status.EXPIRED, Match.Status.REJECTED],
        decided_at__gte=cutoff,
        proposal__pair_hash__in=list(by_hash),
    ).values_list("proposal__pair_hash", flat=True)
    blocked |= {by_hash[h] for h in expired}
    return blocked


def proposal_queue_refill(*, force: bool = False) -> int:
    """Top the generation queue up to its high mark once it is below its low mark.

    Candidates are a random pool of active members with no open proposal; the pool's
    pairs are scored at once and taken best first, each member once, skipping pairs that
    are open or cooling down. The insert relies on the one-open-proposal-per-pair
    constraint, so a concurrent refill can only lose a race, never duplicate a pair."""
    queued = Proposal.objects.filter(status=ProposalStatus.QUEUED).count()
    if queued >= settings.PROPOSALS_QUEUE_LOW and not force:
        return 0
    need = settings.PROPOSALS_QUEUE_HIGH - queued
    if need <= 0:
        return 0
    pool = list(
        Profile.objects.filter(is_active=True)
        .exclude(_members_busy())
        .order_by("?")
        .values_list("user_id", "interest_mask", "privacy")[: max(need * 6, 200)]
    )
    if len(pool) < 2:
        return 0
    ids = np.array([p[0] for p in pool], dtype=np.int64)
    masks = np.array([p[1] for p in pool], dtype=np.int64)
    public = np.array([p[2] == Profile.Privacy.PUBLIC for p in pool], dtype=bool)
    # A pair that is open or cooling down must not use up its two members: pick, look the
    # picks up, and pick again around the blocked ones until none of the picks is blocked.
    # This ends: the blocked set only grows, and the pool has finitely many pairs.
    blocked: set[tuple[int, int]] = set()
    while True:
        candidates = pairs_best(ids=ids, masks=masks, public=public, limit=need * 2, blocked=blocked)
        newly = _pairs_blocked(pairs=[(a, b) for a, b, _ in candidates]) - blocked
        if not newly:
            break
        blocked |= newly
    picked = [(a, b, score) for a, b, score in candidates if (a, b) not in blocked][:need]
    if connection.vendor == "postgresql":
        return _proposals_insert_postgresql(picked=picked)
    rows = [
        Proposal(
            member_a_id=a,
            member_b_id=b,
            pair_hash=pair_hash_of(a, b),
            compatibility=score,
            status=ProposalStatus.QUEUED,
            voters_required=settings.PROPOSALS_VOTERS_PER_PROPOSAL,
            approve_threshold=settings.PROPOSALS_APPROVE_THRESHOLD,
        )
        for a, b, score in picked
    ]
    created = Proposal.objects.bulk_create(rows, ignore_conflicts=True)
    return len(created)


def _proposals_insert_postgresql(*, picked: list[tuple[int, int, float]]) -> int:
    """The queued rows in one INSERT whose values travel as four arrays: a statement of a
    fixed size, where the ORM's would carry ten parameters per row (and build a model each).
    ON CONFLICT DO NOTHING is the ORM's ignore_conflicts: a pair a concurrent refill queued
    first is skipped. Returns the rows inserted."""
    if not picked:
        return 0
    table = Proposal._meta.db_table
    # Every NOT NULL column without a table default is named (Django's defaults are Python's).
    sql = (
        f"INSERT INTO {table} (public_id, member_a_id, member_b_id, pair_hash, compatibility, status,"  # noqa: S608
        " voters_required, approve_threshold, yes_count, no_count)"
        " SELECT gen_random_uuid(), t.a, t.b, t.h, t.c, %s, %s, %s, 0, 0"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::float8[]) AS t(a, b, h, c)"
        " ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                ProposalStatus.QUEUED.value,
                settings.PROPOSALS_VOTERS_PER_PROPOSAL,
                settings.PROPOSALS_APPROVE_THRESHOLD,
                [a for a, _, _ in picked],
                [b for _, b, _ in picked],
                [pair_hash_of(a, b) for a, b, _ in picked],
                [score for _, _, score in picked],
            ],
        )
        return max(cursor.rowcount, 0)


# -- voter loads ------------------------------------------------------------------------
def _chunks(ids: list[int]) -> Iterator[list[int]]:
    """``ids`` in runs short enough for one statement's parameters (SQLite caps them)."""
    size = min(connection.features.max_query_params or 10_000, 10_000) - 10
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _loads_adjust(*, deltas: Mapping[int, int]) -> None:
    """Add ``deltas[user_id]`` to each member's ``open_assignments`` (never below zero), in
    the caller's transaction.

    The rows are locked first, in ascending ``user_id``, then updated: every service that
    changes loads does it here, once per transaction and after its proposal rows, so two of
    them may wait for each other but never deadlock (ops/LOCKING.md). ``no_key``: only a
    counter changes, so inserts that reference these members are not held up."""
    changes = {user_id: delta for user_id, delta in deltas.items() if delta}
    if not changes:
        return
    ids = sorted(changes)
    if connection.vendor == "postgresql":
        profile = Profile._meta.db_table
        with connection.cursor() as cursor:
            # The lock statement sorts before it locks, so the rows are taken in user_id order.
            cursor.execute(
                f"SELECT user_id FROM {profile} WHERE user_id = ANY(%s)"  # noqa: S608
                " ORDER BY user_id FOR NO KEY UPDATE",
                [ids],
            )
            cursor.execute(
                f"UPDATE {profile} AS f SET open_assignments = GREATEST(f.open_assignments + d.delta, 0)"  # noqa: S608
                " FROM unnest(%s::bigint[], %s::int[]) AS d(user_id, delta) WHERE f.user_id = d.user_id",
                [ids, [changes[user_id] for user_id in ids]],
            )
        return
    for chunk in _chunks(ids):
        list(
            Profile.objects.select_for_update(no_key=True)
            .filter(user_id__in=chunk)
            .order_by("user_id")
            .values_list("user_id", flat=True)
        )
    by_delta: dict[int, list[int]] = {}
    for user_id in ids:
        by_delta.setdefault(changes[user_id], []).append(user_id)
    for delta, users in sorted(by_delta.items()):
        load = Greatest(F("open_assignments") + delta, Value(0), output_field=IntegerField())
        for chunk in _chunks(users):
            Profile.objects.filter(user_id__in=chunk).update(open_assignments=load)


# -- opening proposals for voting -------------------------------------------------------
def _voters_assign(*, proposals: Sequence[Proposal], must_include: int | None = None) -> dict[int, list[int]]:
    """Voters for each of these proposals, exactly as opening them one after another would
    pick them: its ``voters_required`` least-loaded active members (by load, then profile
    id), never one of its pair, each pick raising that member's load for the next proposal.
    A proposal the community cannot staff gets no entry (it stays queued).

    One query reads the ``seats + 3`` least-loaded members; no member beyond them can be
    picked: before any pick at most ``seats - 1`` reads have been picked, so at least four
    read members still have their first (lower) key, and at most three of them are kept
    out (the pair and ``must_include``)."""
    seats = sum(p.voters_required for p in proposals)
    heap = list(
        Profile.objects.filter(is_active=True)
        .order_by("open_assignments", "id")
        .values_list("open_assignments", "id", "user_id")[: seats + 3]
    )  # sorted, hence already a heap
    assigned: dict[int, list[int]] = {}
    for proposal in proposals:
        pair = {proposal.member_a_id, proposal.member_b_id}
        chosen: list[int] = []
        if must_include is not None and must_include not in pair:
            chosen.append(must_include)
        taken: list[tuple[int, int, int]] = []
        passed: list[tuple[int, int, int]] = []
        while len(chosen) < proposal.voters_required and heap:
            entry = heapq.heappop(heap)
            if entry[2] in pair or entry[2] in chosen:
                passed.append(entry)
                continue
            chosen.append(entry[2])
            taken.append(entry)
        staffed = len(chosen) >= proposal.voters_required
        for load, profile_id, user_id in taken:
            heapq.heappush(heap, (load + 1 if staffed else load, profile_id, user_id))
        for entry in passed:
            heapq.heappush(heap, entry)
        if staffed:
            assigned[proposal.pk] = chosen
    return assigned


def _proposals_open(*, proposals: Sequence[Proposal], must_include: int | None = None) -> list[int]:
    """Move locked queued proposals to voting with their voters; the ids opened. A proposal
    the community is too small to staff stays queued. A constant number of statements
    whatever the batch: one read of the loads, one UPDATE of the proposals, one INSERT of
    the assignments, then the loads."""
    assigned = _voters_assign(proposals=proposals, must_include=must_include)
    if not assigned:
        return []
    window = timedelta(seconds=settings.PROPOSALS_VOTING_WINDOW_SECONDS)
    opened = Proposal.objects.filter(pk__in=list(assigned), status=ProposalStatus.QUEUED).update(
        status=ProposalStatus.VOTING, voting_started_at=Now(), deadline=Now() + window
    )
    if opened != len(assigned):
        # Under the caller's row locks every one was still queued; if not, undo the batch
        # (the caller's transaction) rather than seat voters on a proposal another opened.
        raise Conflict("These proposals changed while they were being opened.", code=ErrorCode.BUSY)
    seats = [(p.pk, voter, p.member_a_id, p.member_b_id) for p in proposals for voter in assigned.get(p.pk, ())]
    if connection.vendor == "postgresql":
        # One statement of four arrays, not the ORM's four parameters (and a model) per seat.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {ProposalVoter._meta.db_table}"  # noqa: S608
                " (proposal_id, voter_id, member_a_id_copy, member_b_id_copy, voted)"
                " SELECT t.p, t.v, t.a, t.b, false FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
                " AS t(p, v, a, b)",
                [list(column) for column in zip(*seats, strict=True)],
            )
    else:
        ProposalVoter.objects.bulk_create(
            [
                ProposalVoter(proposal_id=pk, voter_id=voter, member_a_id_copy=a, member_b_id_copy=b)
                for pk, voter, a, b in seats
            ]
        )
    _loads_adjust(deltas=Counter(voter for voters in assigned.values() for voter in voters))
    return list(assigned)


def proposals_open(*, force: bool = False) -> int:
    """Keep the voting set between its marks: once below the low mark, open the best queued
    proposals up to the high mark, as one batch. Queued rows are taken with SKIP LOCKED, so
    two beat processes split the work instead of opening one proposal twice."""
    voting = Proposal.objects.filter(status=ProposalStatus.VOTING).count()
    if voting >= settings.PROPOSALS_VOTING_LOW and not force:
        return 0
    need = settings.PROPOSALS_VOTING_HIGH - voting
    if need <= 0:
        return 0
    with transaction.atomic():
        batch = list(
            Proposal.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=ProposalStatus.QUEUED)
            .order_by("-compatibility", "id")[:need]
        )
        return len(_proposals_open(proposals=batch))


def proposal_open_for_voter(*, user: User) -> Proposal | None:
    """Open one queued proposal with this member among its voters (a voter who has voted on
    everything must never be left with nothing to do). Refills the queue if it is empty."""
    for attempt in range(2):
        with transaction.atomic():
            proposal = (
                Proposal.objects.select_for_update(skip_locked=True, no_key=True)
                .filter(status=ProposalStatus.QUEUED)
                .exclude(Q(member_a=user) | Q(member_b=user))
                .order_by("-compatibility", "id")
                .first()
            )
            if proposal is not None and _proposals_open(proposals=[proposal], must_include=int(user.pk)):
                proposal.refresh_from_db()
                return proposal
        if attempt == 0:
            proposal_queue_refill(force=True)
    return None


# -- votes and finalization -------------------------------------------------------------
@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    created: bool
    proposal: Proposal


def vote_cast(*, user: User, proposal_id: object, choice: str) -> VoteResult:
    if choice not in Vote.Choice.values:
        raise InvalidInput("Vote yes or no.", code=ErrorCode.INVALID_CHOICE, fields={"choice": ["Must be yes or no."]})
    key = public_id_parse(proposal_id)
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update(no_key=True).filter(public_id=key).first()
        if proposal is None:
            raise NotFound("No such proposal.", code=ErrorCode.PROPOSAL_NOT_FOUND)
        assignment = ProposalVoter.objects.filter(proposal=proposal, voter=user).first()
        if assignment is None:
            raise Forbidden("You are not a voter on this proposal.", code=ErrorCode.NOT_A_VOTER)
        existing = Vote.objects.filter(assignment=assignment).first()
        if existing is not None:
            if existing.choice == choice:
                return VoteResult(vote=existing, created=False, proposal=proposal)
            raise Conflict("You already voted on this proposal.", code=ErrorCode.ALREADY_VOTED)
        if proposal.status != ProposalStatus.VOTING or _deadline_passed(proposal):
            raise Conflict("Voting on this proposal has closed.", code=ErrorCode.PROPOSAL_CLOSED)
        vote = Vote.objects.create(assignment=assignment, proposal=proposal, voter=user, choice=choice)
        ProposalVoter.objects.filter(pk=assignment.pk).update(voted=True)
        field = "yes_count" if choice == Vote.Choice.YES else "no_count"
        Proposal.objects.filter(pk=proposal.pk).update(**{field: F(field) + 1})
        proposal.refresh_from_db()
        # Every load this vote changes (the voter's, and on approval those of the voters who
        # never voted) is applied once, at the end, in the one lock order.
        deltas: Counter[int] = Counter({int(user.pk): -1})
        if proposal.yes_count >= proposal.approve_threshold:
            _proposals_close(decided=[(proposal, True)], deltas=deltas)
            proposal.refresh_from_db()
        else:
            _loads_adjust(deltas=deltas)
    return VoteResult(vote=vote, created=True, proposal=proposal)


def _deadline_passed(proposal: Proposal) -> bool:
    return bool(Proposal.objects.filter(pk=proposal.pk, deadline__lte=Now()).exists())


def _proposals_close(*, decided: Sequence[tuple[Proposal, bool]], deltas: Counter[int] | None = None) -> int:
    """Close voting proposals this transaction has locked and read as voting: approve or
    reject each, release the loads of the voters who never voted on them, and make the
    approved ones matches. ``deltas`` are the caller's own load changes, applied with these
    (once, in the one lock order). A constant number of statements whatever the batch.

    The status UPDATEs are conditional on ``voting``. Under the caller's row locks they
    change every row; if one did not, the batch is undone (nothing half-closed) and the
    caller's next run takes it again."""
    loads: Counter[int] = Counter(deltas or {})
    closed = 0
    for approved in (True, False):
        ids = [proposal.pk for proposal, verdict in decided if verdict is approved]
        if not ids:
            continue
        updated = Proposal.objects.filter(pk__in=ids, status=ProposalStatus.VOTING).update(
            status=ProposalStatus.APPROVED if approved else ProposalStatus.REJECTED, finalized_at=Now()
        )
        if updated != len(ids):
            raise Conflict("These proposals changed while they were being closed.", code=ErrorCode.BUSY)
        closed += updated
    if not closed:
        _loads_adjust(deltas=loads)
        return 0
    # Assignments nobody voted on no longer count towards their voters' load.
    unvoted = (
        ProposalVoter.objects.filter(proposal_id__in=[p.pk for p, _ in decided], voted=False)
        .values("voter_id")
        .annotate(n=Count("id"))
        .values_list("voter_id", "n")
    )
    for voter, n in unvoted:
        loads[voter] -= n
    matches_create(
        new=[
            MatchNew(
                member_a_id=proposal.member_a_id,
                member_b_id=proposal.member_b_id,
                compatibility=proposal.compatibility,
                proposal=proposal,
            )
            for proposal, approved in decided
            if approved
        ]
    )
    _loads_adjust(deltas=loads)
    return closed


def proposals_finalize_due(*, limit: int = 500) -> int:
    """Finalize every voting proposal whose deadline has passed: more yes than no approves,
    anything else rejects. A batch of up to ``limit`` is one transaction of a constant
    number of statements. Rows are locked with SKIP LOCKED and closed conditionally, so
    any number of beat processes finalize each proposal exactly once."""
    done = 0
    while True:
        with transaction.atomic():
            due = list(
                Proposal.objects.select_for_update(skip_locked=True, no_key=True)
                .filter(status=ProposalStatus.VOTING, deadline__lte=Now())
                .order_by("deadline", "id")
                .only("id", "member_a_id", "member_b_id", "compatibility", "yes_count", "no_count")[:limit]
            )
            done += _proposals_close(decided=[(p, p.yes_count > p.no_count) for p in due])
        if len(due) < limit:
            return done


def proposal_finalize_now(*, proposal_id: int) -> bool:
    """An operator's manual finalize (admin action), by the same rule as the deadline."""
    with transaction.atomic():
        proposal = (
            Proposal.objects.select_for_update(no_key=True).filter(pk=proposal_id, status=ProposalStatus.VOTING).first()
        )
        if proposal is None:
            return False
        return bool(_proposals_close(decided=[(proposal, proposal.yes_count > proposal.no_count)]))


# -- metrics --------------------------------------------------------------------------
def metrics_record() -> SystemMetric:
    counts = Proposal.objects.aggregate(
        queued=Count("id", filter=Q(status=ProposalStatus.QUEUED)),
        voting=Count("id", filter=Q(status=ProposalStatus.VOTING)),
        approved=Count("id", filter=Q(status=ProposalStatus.APPROVED)),
        rejected=Count("id", filter=Q(status=ProposalStatus.REJECTED)),
    )
    return SystemMetric.objects.create(
        queue_depth=counts["queued"],
        active_voting=counts["voting"],
        approved=counts["approved"],
        rejected=counts["rejected"],
        voters_assigned=ProposalVoter.objects.filter(proposal__status=ProposalStatus.VOTING).count(),
        votes_cast=Vote.objects.count(),
    )
