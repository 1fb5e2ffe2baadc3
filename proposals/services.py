"""Writes for the proposals loop. Every function owns its transaction (DESIGN.md)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Now

from matchplatform.exceptions import Conflict, ErrorCode, Forbidden, InvalidInput, NotFound
from proposals.compat import pairs_best
from proposals.models import (
    OPEN_PAIR_STATUSES,
    Conversation,
    Event,
    FeedItem,
    Match,
    Message,
    Profile,
    Proposal,
    ProposalStatus,
    ProposalVoter,
    SystemMetric,
    Vote,
    WalletNonce,
    pair_hash_of,
)
from proposals.vocab import INTERESTS, interest_mask

logger = logging.getLogger(__name__)


# -- profiles -------------------------------------------------------------------------
def profile_update(
    *,
    user: User,
    display_name: str | None = None,
    bio: str | None = None,
    interests: Iterable[str] | None = None,
    privacy: str | None = None,
) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user, defaults={"display_name": str(user)[:80]})
    if display_name is not None:
        if not display_name.strip():
            raise InvalidInput(
                "Display name must not be empty.", code=ErrorCode.REQUIRED, fields={"display_name": ["Required."]}
            )
        profile.display_name = display_name.strip()[:80]
    if bio is not None:
        profile.bio = bio[:2000]
    if interests is not None:
        values = sorted(set(interests), key=lambda v: INTERESTS.index(v) if v in INTERESTS else len(INTERESTS))
        unknown = [v for v in values if v not in INTERESTS]
        if unknown:
            message = f"Unknown interests: {', '.join(unknown[:5])}."
            raise InvalidInput(message, code=ErrorCode.INVALID_CHOICE, fields={"interests": [message]})
        profile.interests = values
        profile.interest_mask = interest_mask(values)
    if privacy is not None:
        if privacy not in Profile.Privacy.values:
            raise InvalidInput(
                "Unknown privacy setting.", code=ErrorCode.INVALID_CHOICE, fields={"privacy": ["Invalid."]}
            )
        profile.privacy = privacy
    profile.save()
    return profile


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


# A public id as the API writes it and the schema declares it (format: uuid): 36 characters,
# hyphens at their places. uuid.UUID alone would also take braces, "urn:uuid:" and no hyphens.
_PUBLIC_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def public_id_parse(value: object) -> uuid.UUID:
    """A public id from a URL or a caller; anything that is not one is "not found", like an
    id that names nothing (or something of someone else's)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or _PUBLIC_ID.fullmatch(value) is None:
        raise NotFound("Not found.", code=ErrorCode.NOT_FOUND)
    return uuid.UUID(value)


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
        _match_create(
            member_a_id=proposal.member_a_id,
            member_b_id=proposal.member_b_id,
            compatibility=proposal.compatibility,
            proposal=proposal,
        )
    return True


def _match_create(
    *,
    member_a_id: int,
    member_b_id: int,
    compatibility: float,
    proposal: Proposal | None = None,
    event: Event | None = None,
) -> Match:
    """A match, its conversation and its two feed rows, in the caller's transaction."""
    match = Match.objects.create(
        proposal=proposal,
        event=event,
        source=Match.Source.EVENT if event is not None else Match.Source.PROPOSAL,
        member_a_id=member_a_id,
        member_b_id=member_b_id,
        compatibility_score=min(max(float(compatibility), 0.0), 1.0),
        expires_at=Now() + timedelta(seconds=settings.PROPOSALS_MATCH_TTL_SECONDS),
    )
    # created_at and expires_at are database expressions; read back what was stored.
    match.refresh_from_db(fields=["created_at", "expires_at"])
    FeedItem.objects.bulk_create(
        [
            FeedItem(
                member_id=member,
                other_id=other,
                match=match,
                status=match.status,
                compatibility=match.compatibility_score,
                created_at=match.created_at,
                expires_at=match.expires_at,
                event=event,
                source=match.source,
            )
            for member, other in ((member_a_id, member_b_id), (member_b_id, member_a_id))
        ]
    )
    Conversation.objects.create(match=match)
    return match


def event_match_create(*, event: Event, member_a: User, member_b: User, compatibility: float) -> Match:
    """Members matched at an event (by its organisers). Once per pair and event."""
    if member_a.pk == member_b.pk:
        raise InvalidInput("A match needs two different members.", code=ErrorCode.SAME_MEMBER)
    if not 0.0 <= float(compatibility) <= 1.0:
        raise InvalidInput(
            "Compatibility is between 0 and 1.", code=ErrorCode.INVALID, fields={"compatibility": ["Between 0 and 1."]}
        )
    low, high = sorted((member_a.pk, member_b.pk))
    try:
        with transaction.atomic():
            return _match_create(member_a_id=low, member_b_id=high, compatibility=compatibility, event=event)
    except IntegrityError:
        raise Conflict("These two members are already matched at this event.", code=ErrorCode.ALREADY_MATCHED) from None


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


# -- matches and conversations ----------------------------------------------------------
def _match_for(*, user: User, match_id: object, lock: bool = False) -> Match:
    qs = Match.objects.select_for_update() if lock else Match.objects.all()
    match = qs.filter(Q(member_a=user) | Q(member_b=user), public_id=public_id_parse(match_id)).first()
    if match is None:
        raise NotFound("No such match.", code=ErrorCode.MATCH_NOT_FOUND)
    return match


def match_decide(*, user: User, match_id: object, decision: str) -> Match:
    if decision not in (Match.Decision.ACCEPT, Match.Decision.REJECT):
        raise InvalidInput("Accept or reject.", code=ErrorCode.INVALID_CHOICE, fields={"decision": ["Invalid."]})
    with transaction.atomic():
        match = _match_for(user=user, match_id=match_id, lock=True)
        if match.status != Match.Status.PENDING or Match.objects.filter(pk=match.pk, expires_at__lte=Now()).exists():
            status = Match.Status.EXPIRED if match.status == Match.Status.PENDING else match.status
            raise Conflict(f"This match is {status} and can no longer change.", code=ErrorCode.MATCH_CLOSED)
        side = "a" if match.member_a_id == user.pk else "b"
        answered = getattr(match, f"decision_{side}")
        if answered == decision:  # the same answer again (a retry): nothing changes
            return match
        if answered:
            raise Conflict(f"You have already answered this match ({answered}).", code=ErrorCode.ALREADY_ANSWERED)
        setattr(match, f"decision_{side}", decision)
        if decision == Match.Decision.REJECT:
            match.status = Match.Status.REJECTED
        elif match.decision_a == match.decision_b == Match.Decision.ACCEPT:
            match.status = Match.Status.ACCEPTED
        fields: dict[str, Any] = {f"decision_{side}": decision, f"responded_at_{side}": Now(), "status": match.status}
        if match.status != Match.Status.PENDING:
            fields["decided_at"] = Now()
            FeedItem.objects.filter(match=match).update(status=match.status)
        Match.objects.filter(pk=match.pk).update(**fields)
        if match.status == Match.Status.REJECTED:
            Conversation.objects.filter(match=match, closed_at__isnull=True).update(closed_at=Now())
        match.refresh_from_db()
    return match


def matches_expire(*, batch: int = 1000) -> int:
    """Expire every pending match past its deadline, a batch per transaction; rows another
    process holds are skipped (it is deciding or expiring them)."""
    done = 0
    while True:
        with transaction.atomic():
            ids = list(
                Match.objects.select_for_update(skip_locked=True)
                .filter(status=Match.Status.PENDING, expires_at__lte=Now())
                .order_by("expires_at")
                .values_list("id", flat=True)[:batch]
            )
            Match.objects.filter(pk__in=ids, status=Match.Status.PENDING).update(
                status=Match.Status.EXPIRED, decided_at=Now()
            )
            FeedItem.objects.filter(match_id__in=ids).update(status=Match.Status.EXPIRED)
            Conversation.objects.filter(match_id__in=ids, closed_at__isnull=True).update(closed_at=Now())
        done += len(ids)
        if len(ids) < batch:
            return done


def conversation_for(*, user: User, conversation_id: object) -> Conversation:
    conversation = (
        Conversation.objects.select_related("match")
        .filter(Q(match__member_a=user) | Q(match__member_b=user), public_id=public_id_parse(conversation_id))
        .first()
    )
    if conversation is None:
        raise NotFound("No such conversation.", code=ErrorCode.CONVERSATION_NOT_FOUND)
    return conversation


def message_post(*, user: User, conversation_id: object, body: object) -> Message:
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("Write a message.", code=ErrorCode.REQUIRED, fields={"body": ["Required."]})
    if len(body) > 4000:
        raise InvalidInput(
            "Messages are at most 4,000 characters.", code=ErrorCode.TOO_LONG, fields={"body": ["Too long."]}
        )
    with transaction.atomic():
        conversation = conversation_for(user=user, conversation_id=conversation_id)
        if conversation.closed_at is not None:
            raise Conflict("This conversation is closed.", code=ErrorCode.CONVERSATION_CLOSED)
        return Message.objects.create(conversation=conversation, sender=user, body=body.strip())


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


def wallet_nonces_prune() -> int:
    """Drop nonces that can no longer be used: spent, or expired for over a day."""
    deleted, _ = WalletNonce.objects.filter(
        Q(used_at__isnull=False) | Q(expires_at__lt=Now() - timedelta(days=1))
    ).delete()
    return deleted


def member_create(*, username: str, password: str | None = None, **profile: Any) -> User:
    """A user with a profile (seeding, tests, sign-up)."""
    User = get_user_model()  # noqa: N806
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            profile_update(user=user, display_name=profile.pop("display_name", username), **profile)
    except IntegrityError:
        raise Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN) from None
    return user
