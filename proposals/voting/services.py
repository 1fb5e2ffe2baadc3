"""Writes of the voting loop: the generation queue, opening proposals for voting, votes,
and finalization (an approved proposal becomes a match). Every public function owns its
transaction; the locking order they share is in ops/LOCKING.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Now

from matchplatform.exceptions import Conflict, ErrorCode, Forbidden, InvalidInput, NotFound
from proposals.ids import public_id_parse
from proposals.matches.services import match_create
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
        for a, b, score in candidates
        if (a, b) not in blocked
    ][:need]
    created = Proposal.objects.bulk_create(rows, ignore_conflicts=True)
    return len(created)


# -- opening proposals for voting -------------------------------------------------------
def _voters_pick(*, proposal: Proposal, count: int, must_include: int | None = None) -> list[int]:
    """Least-loaded active members first, never one of the pair."""
    exclude = {proposal.member_a_id, proposal.member_b_id}
    picked: list[int] = []
    if must_include is not None and must_include not in exclude:
        picked.append(must_include)
    rest = (
        Profile.objects.filter(is_active=True)
        .exclude(user_id__in=exclude | set(picked))
        .order_by("open_assignments", "id")
        .values_list("user_id", flat=True)[: count - len(picked)]
    )
    picked += list(rest)
    return picked


def _proposal_open(*, proposal: Proposal, must_include: int | None = None) -> bool:
    """Move a locked queued proposal to voting with its voters. False when the community
    is too small to give it its voters (it stays queued)."""
    voters = _voters_pick(proposal=proposal, count=proposal.voters_required, must_include=must_include)
    if len(voters) < proposal.voters_required:
        return False
    window = timedelta(seconds=settings.PROPOSALS_VOTING_WINDOW_SECONDS)
    Proposal.objects.filter(pk=proposal.pk, status=ProposalStatus.QUEUED).update(
        status=ProposalStatus.VOTING, voting_started_at=Now(), deadline=Now() + window
    )
    ProposalVoter.objects.bulk_create(
        [
            ProposalVoter(
                proposal=proposal,
                voter_id=v,
                member_a_id_copy=proposal.member_a_id,
                member_b_id_copy=proposal.member_b_id,
            )
            for v in voters
        ]
    )
    Profile.objects.filter(user_id__in=voters).update(open_assignments=F("open_assignments") + 1)
    return True


def proposals_open(*, force: bool = False) -> int:
    """Keep the voting set between its marks: once below the low mark, open the best queued
    proposals up to the high mark. Queued rows are taken with SKIP LOCKED, so two beat
    processes split the work instead of opening one proposal twice."""
    voting = Proposal.objects.filter(status=ProposalStatus.VOTING).count()
    if voting >= settings.PROPOSALS_VOTING_LOW and not force:
        return 0
    need = settings.PROPOSALS_VOTING_HIGH - voting
    opened = 0
    if need <= 0:
        return 0
    with transaction.atomic():
        batch = list(
            Proposal.objects.select_for_update(skip_locked=True)
            .filter(status=ProposalStatus.QUEUED)
            .order_by("-compatibility", "id")[:need]
        )
        for proposal in batch:
            opened += _proposal_open(proposal=proposal)
    return opened


def proposal_open_for_voter(*, user: User) -> Proposal | None:
    """Open one queued proposal with this member among its voters (a voter who has voted on
    everything must never be left with nothing to do). Refills the queue if it is empty."""
    for attempt in range(2):
        with transaction.atomic():
            proposal = (
                Proposal.objects.select_for_update(skip_locked=True)
                .filter(status=ProposalStatus.QUEUED)
                .exclude(Q(member_a=user) | Q(member_b=user))
                .order_by("-compatibility", "id")
                .first()
            )
            if proposal is not None and _proposal_open(proposal=proposal, must_include=int(user.pk)):
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
        proposal = Proposal.objects.select_for_update().filter(public_id=key).first()
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
        Profile.objects.filter(user=user, open_assignments__gt=0).update(open_assignments=F("open_assignments") - 1)
        field = "yes_count" if choice == Vote.Choice.YES else "no_count"
        Proposal.objects.filter(pk=proposal.pk).update(**{field: F(field) + 1})
        proposal.refresh_from_db()
        if proposal.yes_count >= proposal.approve_threshold:
            _proposal_finalize(proposal=proposal, approved=True)
            proposal.refresh_from_db()
    return VoteResult(vote=vote, created=True, proposal=proposal)


def _deadline_passed(proposal: Proposal) -> bool:
    return bool(Proposal.objects.filter(pk=proposal.pk, deadline__lte=Now()).exists())


def _proposal_finalize(*, proposal: Proposal, approved: bool) -> bool:
    """Close a locked voting proposal. Conditional on its status, so it happens once."""
    status = ProposalStatus.APPROVED if approved else ProposalStatus.REJECTED
    updated = Proposal.objects.filter(pk=proposal.pk, status=ProposalStatus.VOTING).update(
        status=status, finalized_at=Now()
    )
    if not updated:
        return False
    # Assignments nobody voted on no longer count towards their voters' load.
    unvoted = ProposalVoter.objects.filter(proposal=proposal, voted=False).values_list("voter_id", flat=True)
    Profile.objects.filter(user_id__in=list(unvoted), open_assignments__gt=0).update(
        open_assignments=F("open_assignments") - 1
    )
    if approved:
        match_create(
            member_a_id=proposal.member_a_id,
            member_b_id=proposal.member_b_id,
            compatibility=proposal.compatibility,
            proposal=proposal,
        )
    return True


def proposals_finalize_due(*, limit: int = 500) -> int:
    """Finalize every voting proposal whose deadline has passed: more yes than no approves,
    anything else rejects. Rows are locked with SKIP LOCKED and closed conditionally, so any
    number of beat processes finalize each proposal exactly once."""
    done = 0
    while True:
        with transaction.atomic():
            due = list(
                Proposal.objects.select_for_update(skip_locked=True)
                .filter(status=ProposalStatus.VOTING, deadline__lte=Now())
                .order_by("deadline", "id")[:limit]
            )
            for proposal in due:
                done += _proposal_finalize(proposal=proposal, approved=proposal.yes_count > proposal.no_count)
        if len(due) < limit:
            return done


def proposal_finalize_now(*, proposal_id: int) -> bool:
    """An operator's manual finalize (admin action), by the same rule as the deadline."""
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().filter(pk=proposal_id, status=ProposalStatus.VOTING).first()
        if proposal is None:
            return False
        return _proposal_finalize(proposal=proposal, approved=proposal.yes_count > proposal.no_count)


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
