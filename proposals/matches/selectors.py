"""Reads of the matches sub-domain: the feed, one match, mutual connections, conversations.
Nothing here writes, and nothing here imports a services module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone

from matchplatform.exceptions import ErrorCode, NotFound
from proposals.ids import id_parse, public_id_parse
from proposals.matches.cards import member_card, member_privacy, profile_visible
from proposals.matches.cursor import Cursor
from proposals.matches.params import FeedQuery
from proposals.matches.sql import FeedRow, item_statement, page_statement, rows_read
from proposals.matches.terms import ACCEPTED
from proposals.matches.terms import bad_parameter as _bad
from proposals.models import Conversation, Event, FeedItem, Message, Profile


@dataclass
class FeedPage:
    items: list[FeedRow]
    next_cursor: str | None
    now: datetime  # the database's clock when the page was read


def feed_page(*, user: User, query: FeedQuery) -> FeedPage:
    """One page of the member's feed: at most ``page_size`` items and the cursor of the next
    page (None on the last). One statement whatever the page size."""
    built = page_statement(member_id=user.pk, query=query)
    if built is None:
        return FeedPage(items=[], next_cursor=None, now=timezone.now())
    rows, now = rows_read(*built)
    next_cursor = None
    if len(rows) > query.page_size:
        rows = rows[: query.page_size]
        last = rows[-1]
        key: datetime | float
        if query.sort == "compatibility":
            key = last.compatibility
        elif query.sort == "expiring_soon" and last.segment == 0:
            key = last.expires_at
        else:
            key = last.created_at
        as_of = None
        if query.sort == "expiring_soon":
            as_of = query.cursor.as_of if query.cursor is not None and query.cursor.as_of else now
        next_cursor = Cursor(sort=query.sort, segment=last.segment, key=key, id=last.id, as_of=as_of).encode()
    return FeedPage(items=rows, next_cursor=next_cursor, now=now)


def connections_of(member_id: int) -> QuerySet[FeedItem]:
    return FeedItem.objects.filter(member_id=member_id, status=ACCEPTED)


def _hidden_connection(viewer: User) -> Q:
    """A mutual connection stays out of lists when they are private. (A connections-only
    member in a *mutual* list is the viewer's own connection, so may be shown.)"""
    return Q(other__profile__privacy=Profile.Privacy.PRIVATE) | Q(other__profile__isnull=True) | Q(other_id=viewer.pk)


def feed_item_for(*, user: User, match_id: object) -> FeedPage:
    """The member's feed item of one match (the same statement as a page, for one row)."""
    built = item_statement(member_id=user.pk, match_public_id=public_id_parse(match_id))
    rows, now_value = rows_read(*built)
    if not rows:
        raise NotFound("No such match.", code=ErrorCode.MATCH_NOT_FOUND)
    return FeedPage(items=rows[:1], next_cursor=None, now=now_value)


def _member(member_id: object) -> User:
    pk = id_parse(member_id) if isinstance(member_id, str) else None
    if pk is None:
        raise _bad("member", "member is a member id: a positive whole number.")
    member = User.objects.select_related("profile").filter(pk=pk, is_active=True).first()
    if member is None:
        raise NotFound("No such member.", code=ErrorCode.MEMBER_NOT_FOUND)
    return member


MUTUAL_LIST_MAX = 100


def mutual_connections(*, user: User, member_id: object) -> dict[str, Any]:
    """The members both the viewer and ``member`` are connected to (accepted matches), as far
    as privacy allows: none at all if the member's connections are hidden from the viewer,
    and never a private member. Asked about oneself, they are one's own connections (every
    member id the schema allows is a question with an answer, not a 400)."""
    member = _member(member_id)
    mine = connections_of(user.pk)
    myself = member.pk == user.pk
    connected = myself or mine.filter(other_id=member.pk).exists()
    # Beyond public members, only members one has a match with can be asked about: anyone
    # else answers like an unknown id (no names, and no telling which ids exist).
    if member_privacy(member) != Profile.Privacy.PUBLIC and not (
        connected or FeedItem.objects.filter(member=user, other=member).exists()
    ):
        raise NotFound("No such member.", code=ErrorCode.MEMBER_NOT_FOUND)
    if not myself and not profile_visible(member, connected=connected):
        return {"member": member_card(member, connected=connected), "visible": False, "count": 0, "results": []}
    shared_ids = (
        connections_of(member.pk)
        .filter(other_id__in=mine.values("other_id"))
        .exclude(_hidden_connection(user))
        .values("other_id")
        .distinct()
    )
    count = shared_ids.count()
    people = User.objects.filter(pk__in=shared_ids).select_related("profile").order_by("profile__display_name", "id")
    return {
        "member": member_card(member, connected=connected),
        "visible": True,
        "count": count,
        "results": [member_card(p, connected=True) for p in people[:MUTUAL_LIST_MAX]],
    }


def event_exists(event_id: int) -> bool:
    return Event.objects.filter(pk=event_id).exists()


def conversation_for(*, user: User, conversation_id: object) -> Conversation:
    """One of the member's conversations by its public id (anyone else's is "not found")."""
    conversation = (
        Conversation.objects.select_related("match")
        .filter(Q(match__member_a=user) | Q(match__member_b=user), public_id=public_id_parse(conversation_id))
        .first()
    )
    if conversation is None:
        raise NotFound("No such conversation.", code=ErrorCode.CONVERSATION_NOT_FOUND)
    return conversation


def messages_for(*, conversation: Conversation, after_id: int = 0, limit: int = 100) -> QuerySet[Message]:
    return conversation.messages.filter(id__gt=after_id).select_related("sender__profile").order_by("id")[:limit]
