"""Writes of the matches sub-domain: creating matches (from a proposal or an event),
answering them, expiring them, following a match's connections, posting messages. Every
public function owns its transaction, except ``matches_create`` and ``match_create``, which
run in their caller's (a proposal's finalization). Locks: see ops/LOCKING.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from matchplatform.exceptions import Conflict, ErrorCode, Forbidden, InvalidInput, NotFound
from proposals.ids import public_id_parse
from proposals.matches.cards import profile_visible
from proposals.matches.selectors import connections_of, conversation_for
from proposals.matches.terms import ACCEPTED, status_shown
from proposals.models import Conversation, Event, FeedItem, Follow, Match, Message, Profile, Proposal


@dataclass(frozen=True)
class MatchNew:
    """A match to create: its two members (``member_a_id < member_b_id``), its score, and
    where it comes from (a proposal or an event, exactly one)."""

    member_a_id: int
    member_b_id: int
    compatibility: float
    proposal: Proposal | None = None
    event: Event | None = None


def matches_create(*, new: Sequence[MatchNew]) -> list[Match]:
    """Matches, each with its conversation and its two feed rows, in the caller's
    transaction: one INSERT for the matches, one read of the times the database gave them,
    one INSERT for the feed rows and one for the conversations, however many there are (a
    batch of finalized proposals makes hundreds at once)."""
    if not new:
        return []
    expires = Now() + timedelta(seconds=settings.PROPOSALS_MATCH_TTL_SECONDS)
    matches = Match.objects.bulk_create(
        [
            Match(
                proposal=item.proposal,
                event=item.event,
                source=Match.Source.EVENT if item.event is not None else Match.Source.PROPOSAL,
                member_a_id=item.member_a_id,
                member_b_id=item.member_b_id,
                compatibility_score=min(max(float(item.compatibility), 0.0), 1.0),
                expires_at=expires,
            )
            for item in new
        ]
    )
    # created_at and expires_at are the database's clock; the feed rows copy what was stored.
    stored = {
        pk: (created, expires_at)
        for pk, created, expires_at in Match.objects.filter(pk__in=[m.pk for m in matches]).values_list(
            "pk", "created_at", "expires_at"
        )
    }
    for match in matches:
        match.created_at, match.expires_at = stored[match.pk]
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
                event=match.event,
                source=match.source,
            )
            for match in matches
            for member, other in ((match.member_a_id, match.member_b_id), (match.member_b_id, match.member_a_id))
        ]
    )
    Conversation.objects.bulk_create([Conversation(match=match) for match in matches])
    return matches


def match_create(
    *,
    member_a_id: int,
    member_b_id: int,
    compatibility: float,
    proposal: Proposal | None = None,
    event: Event | None = None,
) -> Match:
    """A match, its conversation and its two feed rows, in the caller's transaction."""
    new = MatchNew(
        member_a_id=member_a_id, member_b_id=member_b_id, compatibility=compatibility, proposal=proposal, event=event
    )
    return matches_create(new=[new])[0]


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
            return match_create(member_a_id=low, member_b_id=high, compatibility=compatibility, event=event)
    except IntegrityError:
        raise Conflict("These two members are already matched at this event.", code=ErrorCode.ALREADY_MATCHED) from None


def match_decide(*, user: User, match_id: object, decision: str) -> Match:
    if decision not in (Match.Decision.ACCEPT, Match.Decision.REJECT):
        raise InvalidInput("Accept or reject.", code=ErrorCode.INVALID_CHOICE, fields={"decision": ["Invalid."]})
    with transaction.atomic():
        match = (
            Match.objects.select_for_update(no_key=True)
            .filter(Q(member_a=user) | Q(member_b=user), public_id=public_id_parse(match_id))
            .first()
        )
        if match is None:
            raise NotFound("No such match.", code=ErrorCode.MATCH_NOT_FOUND)
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
                Match.objects.select_for_update(skip_locked=True, no_key=True)
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


@dataclass(frozen=True)
class FollowAllResult:
    followed: int
    already_followed: int
    skipped_privacy: int
    network_visible: bool = True


def follow_all(*, user: User, match_id: object) -> FollowAllResult:
    """Follow every connection of the other member of an accepted match, except those whose
    privacy keeps them from the viewer. Safe to repeat: a second call follows nobody new."""
    match = (
        Match.objects.filter(Q(member_a=user) | Q(member_b=user), public_id=public_id_parse(match_id))
        .select_related("member_a__profile", "member_b__profile")
        .first()
    )
    if match is None:
        raise NotFound("No such match.", code=ErrorCode.MATCH_NOT_FOUND)
    if match.status != ACCEPTED:
        raise Forbidden(
            "Follow-all works on an accepted match; this one is "
            f"{status_shown(match.status, match.expires_at, timezone.now())}.",
            code=ErrorCode.MATCH_NOT_ACCEPTED,
        )
    other = match.member_b if match.member_a_id == user.pk else match.member_a
    if not profile_visible(other, connected=True):
        # A private member's connections are theirs alone: not even how many there are.
        return FollowAllResult(followed=0, already_followed=0, skipped_privacy=0, network_visible=False)
    theirs = list(
        connections_of(other.pk)
        .exclude(other_id=user.pk)
        .values_list("other_id", "other__profile__privacy")
        .distinct()
        .order_by("other_id")
    )
    my_connections = set(connections_of(user.pk).values_list("other_id", flat=True))
    allowed = [
        member
        for member, privacy in theirs
        if privacy == Profile.Privacy.PUBLIC or (privacy == Profile.Privacy.CONNECTIONS and member in my_connections)
    ]
    followed = _follows_insert(follower=user.pk, followees=allowed)
    return FollowAllResult(
        followed=followed, already_followed=len(allowed) - followed, skipped_privacy=len(theirs) - len(allowed)
    )


def _follows_insert(*, follower: int, followees: list[int]) -> int:
    """Insert the follows that do not exist yet; the count of those that were new. One
    statement per 500, ON CONFLICT DO NOTHING, so concurrent calls never count one twice."""
    table = Follow._meta.db_table
    inserted = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(followees), 500):
            chunk = followees[start : start + 500]
            values = ", ".join(["(%s, %s, CURRENT_TIMESTAMP)"] * len(chunk))
            # The table name comes from model meta; every value is a parameter.
            sql = f"INSERT INTO {table} (follower_id, followee_id, created_at) VALUES {values} "  # noqa: S608
            sql += "ON CONFLICT (follower_id, followee_id) DO NOTHING"
            cursor.execute(sql, [v for followee in chunk for v in (follower, followee)])
            inserted += max(cursor.rowcount, 0)
    return inserted
