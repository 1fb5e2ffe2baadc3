"""The matches feed: a member's matches, filtered, sorted and paged by keyset, and the
connections around them (mutual connections, follow-all).

Reads go to ``FeedItem`` only (two rows per match, one per member), so every sort is one
index range from the cursor onwards: page 100 costs what page 1 costs.

A pending match whose deadline has passed is *expired* here, whether or not the expiry
sweep has reached it yet: the feed never shows a pending match that can no longer be
answered.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from matchplatform.exceptions import Forbidden, InvalidInput, NotFound
from proposals.models import Event, FeedItem, Follow, Match, MatchSource, MatchStatus, Profile
from proposals.services import public_id_parse

SORTS = ("newest", "compatibility", "expiring_soon")
STATUSES = tuple(s.value for s in MatchStatus)
SOURCES = tuple(s.value for s in MatchSource)
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
PARAMETERS = ("status", "event", "source", "min_compatibility", "sort", "cursor", "page_size")

ACCEPTED = MatchStatus.ACCEPTED
PENDING = MatchStatus.PENDING


def _whole(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _bad(parameter: str, message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_parameter", fields={parameter: [message]})


# -- the query --------------------------------------------------------------------------
def _aware(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError
    return parsed


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the sort key and id of the last item shown. For
    ``expiring_soon`` also the moment its first page split open pending matches from the
    rest (``as_of``), so a match that expires while the member pages stays where it was
    shown and does not come again in the second part."""

    sort: str
    segment: int  # expiring_soon: 0 = open pending matches, 1 = the rest; 0 otherwise
    key: datetime | float
    id: int
    as_of: datetime | None = None

    def encode(self) -> str:
        key = self.key.isoformat() if isinstance(self.key, datetime) else self.key
        payload: list[object] = [1, self.sort, self.segment, key, self.id]
        if self.as_of is not None:
            payload.append(self.as_of.isoformat())
        raw = json.dumps(payload, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str, *, sort: str) -> Cursor:
        message = "This cursor is not one the feed gave out; start again without it."
        if len(value) > 300:
            raise _bad("cursor", message)
        try:
            raw = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            if not isinstance(raw, list) or len(raw) not in (5, 6):
                raise ValueError
            version, cursor_sort, segment, key, item_id = raw[:5]
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise _bad("cursor", message) from None
        if version != 1 or cursor_sort not in SORTS or segment not in (0, 1) or type(item_id) is not int:
            raise _bad("cursor", message)
        if cursor_sort != sort:
            raise _bad("cursor", f"This cursor belongs to sort={cursor_sort}; use it with that sort.")
        if (len(raw) == 6) != (sort == "expiring_soon"):
            raise _bad("cursor", message)
        try:
            parsed: datetime | float
            if sort == "compatibility":
                if type(key) not in (int, float) or not math.isfinite(key):
                    raise ValueError
                parsed = float(key)
            else:
                parsed = _aware(key)
            as_of = _aware(raw[5]) if len(raw) == 6 else None
        except (ValueError, OverflowError):
            raise _bad("cursor", message) from None
        return cls(sort=sort, segment=segment, key=parsed, id=item_id, as_of=as_of)


@dataclass(frozen=True)
class FeedQuery:
    statuses: tuple[str, ...] = ()
    event_id: int | None = None
    source: str | None = None
    min_compatibility: float | None = None
    sort: str = "newest"
    cursor: Cursor | None = None
    page_size: int = PAGE_SIZE_DEFAULT


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    getlist = getattr(params, "getlist", None)
    raw = getlist(name) if getlist is not None else ([params[name]] if name in params else [])
    return [str(v) for v in raw]


def _one(params: Mapping[str, Any], name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise _bad(name, f"Give {name} once.")
    return values[0].strip() if values else None


def feed_query_parse(params: Mapping[str, Any]) -> FeedQuery:
    """The feed's query string, checked: every bad value is a 400 naming the parameter and
    what it allows."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise _bad(unknown[0], f"Unknown parameter {unknown[0]!r}. The feed takes: {', '.join(PARAMETERS)}.")

    statuses: list[str] = []
    for value in _values(params, "status"):
        if not value.strip():  # an empty value is no filter, like a blank form field
            continue
        for part in value.split(","):
            part = part.strip()
            if part not in STATUSES:
                raise _bad("status", f"Unknown status {part!r}. Allowed: {', '.join(STATUSES)} (several allowed).")
            if part not in statuses:
                statuses.append(part)

    sort = _one(params, "sort") or "newest"
    if sort not in SORTS:
        raise _bad("sort", f"Unknown sort {sort!r}. Allowed: {', '.join(SORTS)}.")

    source = _one(params, "source") or None
    if source is not None and source not in SOURCES:
        raise _bad("source", f"Unknown source {source!r}. Allowed: {', '.join(SOURCES)}.")

    event_id = None
    event = _one(params, "event")
    if event:
        if not _whole(event) or len(event) > 18 or int(event) == 0:
            raise _bad("event", "event is an event id: a positive whole number.")
        event_id = int(event)

    min_compatibility = None
    raw_min = _one(params, "min_compatibility")
    if raw_min:
        try:
            if not raw_min.isascii():  # float() would take other scripts' digits
                raise ValueError
            min_compatibility = float(raw_min)
        except ValueError:
            min_compatibility = math.nan
        if not 0.0 <= min_compatibility <= 1.0:  # NaN fails this too
            raise _bad("min_compatibility", "min_compatibility is a number from 0 to 1.")

    page_size = PAGE_SIZE_DEFAULT
    raw_size = _one(params, "page_size")
    if raw_size:
        if not _whole(raw_size) or len(raw_size) > 3 or not 1 <= int(raw_size) <= PAGE_SIZE_MAX:
            raise _bad("page_size", f"page_size is a whole number from 1 to {PAGE_SIZE_MAX}.")
        page_size = int(raw_size)

    raw_cursor = _one(params, "cursor")
    cursor = Cursor.decode(raw_cursor, sort=sort) if raw_cursor else None
    return FeedQuery(
        statuses=tuple(statuses),
        event_id=event_id,
        source=source,
        min_compatibility=min_compatibility,
        sort=sort,
        cursor=cursor,
        page_size=page_size,
    )


def _open(now: datetime) -> Q:
    """Pending and still answerable."""
    return Q(status=PENDING, expires_at__gt=now)


def _status_q(status: str, now: datetime) -> Q:
    if status == PENDING:
        return _open(now)
    if status == MatchStatus.EXPIRED:
        return Q(status=MatchStatus.EXPIRED) | Q(status=PENDING, expires_at__lte=now)
    return Q(status=status)


def status_shown(item_status: str, expires_at: datetime, now: datetime) -> str:
    return MatchStatus.EXPIRED if item_status == PENDING and expires_at <= now else item_status


@dataclass
class FeedPage:
    items: list[FeedItem]
    next_cursor: str | None
    mutual: dict[int, int] = field(default_factory=dict)
    connected: set[int] = field(default_factory=set)


def _filtered(*, user: User, query: FeedQuery, now: datetime) -> QuerySet[FeedItem]:
    qs = FeedItem.objects.filter(member=user)
    if query.statuses:
        wanted = Q()
        for status in query.statuses:
            wanted |= _status_q(status, now)
        qs = qs.filter(wanted)
    if query.event_id is not None:
        qs = qs.filter(event_id=query.event_id)
    if query.source is not None:
        qs = qs.filter(source=query.source)
    if query.min_compatibility is not None:
        qs = qs.filter(compatibility__gte=query.min_compatibility)
    return qs


def _after_desc(field_name: str, cursor: Cursor) -> Q:
    # Written as "key <= k and (key < k or id < i)" rather than an OR alone, so the database
    # starts its index range at the cursor instead of scanning from the member's first row.
    return Q(**{f"{field_name}__lte": cursor.key}) & (Q(**{f"{field_name}__lt": cursor.key}) | Q(id__lt=cursor.id))


def _after_asc(field_name: str, cursor: Cursor) -> Q:
    return Q(**{f"{field_name}__gte": cursor.key}) & (Q(**{f"{field_name}__gt": cursor.key}) | Q(id__gt=cursor.id))


def _rows(qs: QuerySet[FeedItem], limit: int) -> list[FeedItem]:
    """The page's rows in two steps inside one statement: its ids from the feed index
    (``ORDER BY … LIMIT`` on an index range), then the joins for those rows only. Joining
    first let the planner misjudge a long pending segment and sort hundreds of joined rows
    (bench/feed: 15 ms instead of 0.5 ms at page 100 of ``expiring_soon``)."""
    if limit <= 0:
        return []
    ids = qs.values("pk")[:limit]
    rows = FeedItem.objects.filter(pk__in=ids).select_related("other__profile", "match__conversation", "event")
    return list(rows.order_by(*qs.query.order_by))


def feed_page(*, user: User, query: FeedQuery, now: datetime) -> FeedPage:
    """One page of the member's feed: at most ``page_size`` items and the cursor of the next
    page (None on the last). A constant number of queries whatever the page size."""
    qs = _filtered(user=user, query=query, now=now)
    want = query.page_size + 1
    cursor = query.cursor
    # expiring_soon: the moment that splits open pending matches from the rest, kept from
    # the first page for the whole walk (None for the other sorts).
    as_of = (cursor.as_of if cursor is not None and cursor.as_of else now) if query.sort == "expiring_soon" else None
    rows: list[FeedItem] = []
    segments: list[int] = []
    if query.sort == "newest":
        if cursor is not None:
            qs = qs.filter(_after_desc("created_at", cursor))
        rows = _rows(qs.order_by("-created_at", "-id"), want)
        segments = [0] * len(rows)
    elif query.sort == "compatibility":
        if cursor is not None:
            qs = qs.filter(_after_desc("compatibility", cursor))
        rows = _rows(qs.order_by("-compatibility", "-id"), want)
        segments = [0] * len(rows)
    else:
        # Open pending matches first, soonest deadline first; then everything else, newest
        # first.
        assert as_of is not None
        if (not query.statuses or PENDING in query.statuses) and (cursor is None or cursor.segment == 0):
            first = qs.filter(_open(as_of))
            if cursor is not None:
                first = first.filter(_after_asc("expires_at", cursor))
            rows = _rows(first.order_by("expires_at", "id"), want)
            segments = [0] * len(rows)
        if len(rows) < want:
            rest = qs.exclude(_open(as_of))
            if cursor is not None and cursor.segment == 1:
                rest = rest.filter(_after_desc("created_at", cursor))
            more = _rows(rest.order_by("-created_at", "-id"), want - len(rows))
            rows += more
            segments += [1] * len(more)

    next_cursor = None
    if len(rows) > query.page_size:
        rows = rows[: query.page_size]
        last, segment = rows[-1], segments[query.page_size - 1]
        key: datetime | float
        if query.sort == "compatibility":
            key = last.compatibility
        elif query.sort == "expiring_soon" and segment == 0:
            key = last.expires_at
        else:
            key = last.created_at
        next_cursor = Cursor(sort=query.sort, segment=segment, key=key, id=last.pk, as_of=as_of).encode()
    mutual, connected = _connections_around(user=user, others=[row.other for row in rows])
    return FeedPage(items=rows, next_cursor=next_cursor, mutual=mutual, connected=connected)


# -- privacy ------------------------------------------------------------------------------
def _privacy(member: User) -> str:
    profile = getattr(member, "profile", None)
    return profile.privacy if profile is not None else Profile.Privacy.PRIVATE


def profile_visible(member: User, *, connected: bool) -> bool:
    """Whether a viewer may see this member's profile and connections: public members to
    everyone, connections-only members to their connections, private members to nobody."""
    privacy = _privacy(member)
    return privacy == Profile.Privacy.PUBLIC or (privacy == Profile.Privacy.CONNECTIONS and connected)


def member_card(member: User, *, connected: bool) -> dict[str, Any]:
    profile = getattr(member, "profile", None)
    data: dict[str, Any] = {
        "member_id": member.pk,
        "display_name": profile.display_name if profile is not None else member.get_username(),
        "privacy": _privacy(member),
    }
    if profile is not None and profile_visible(member, connected=connected):
        data.update(bio=profile.bio, interests=profile.interests)
    return data


def _connections_of(member_id: int) -> QuerySet[FeedItem]:
    return FeedItem.objects.filter(member_id=member_id, status=ACCEPTED)


def _connections_around(*, user: User, others: Sequence[User]) -> tuple[dict[int, int], set[int]]:
    """For a page's other members: which are the viewer's connections, and how many
    connections each shares with the viewer that the viewer may see. Two queries for any
    page size (privacy is applied here, on the page's few members)."""
    if not others:
        return {}, set()
    ids = list({o.pk for o in others})
    mine = _connections_of(user.pk)
    connected = set(mine.filter(other_id__in=ids).values_list("other_id", flat=True))
    shared = dict(
        FeedItem.objects.filter(member_id__in=ids, status=ACCEPTED, other_id__in=mine.values("other_id"))
        .exclude(_hidden_connection(user))
        .values("member_id")
        .annotate(n=Count("other_id", distinct=True))
        .values_list("member_id", "n")
    )
    visible = {o.pk for o in others if profile_visible(o, connected=o.pk in connected)}
    return {member: n for member, n in shared.items() if member in visible}, connected


def _hidden_connection(viewer: User) -> Q:
    """A mutual connection stays out of lists when they are private. (A connections-only
    member in a *mutual* list is the viewer's own connection, so may be shown.)"""
    return Q(other__profile__privacy=Profile.Privacy.PRIVATE) | Q(other__profile__isnull=True) | Q(other_id=viewer.pk)


# -- one match -------------------------------------------------------------------------
def feed_item_for(*, user: User, match_id: object) -> FeedPage:
    item = (
        FeedItem.objects.filter(member=user, match__public_id=public_id_parse(match_id))
        .select_related("other__profile", "match__conversation", "event")
        .first()
    )
    if item is None:
        raise NotFound("No such match.", code="match_not_found")
    mutual, connected = _connections_around(user=user, others=[item.other])
    return FeedPage(items=[item], next_cursor=None, mutual=mutual, connected=connected)


def item_data(item: FeedItem, *, page: FeedPage, viewer: User, now: datetime) -> dict[str, Any]:
    match = item.match
    status = status_shown(item.status, item.expires_at, now)
    mine_a = match.member_a_id == viewer.pk
    mine, theirs = (match.decision_a, match.decision_b) if mine_a else (match.decision_b, match.decision_a)
    responded = match.responded_at_a if mine_a else match.responded_at_b
    conversation = getattr(match, "conversation", None)
    connected = item.other_id in page.connected
    left = None
    if status == PENDING:
        left = max(int((item.expires_at - now).total_seconds()), 0)
    return {
        "match_id": str(match.public_id),
        "status": status,
        "compatibility": item.compatibility,
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "seconds_left": left,
        "source": item.source,
        "event": {"id": item.event.pk, "name": item.event.name} if item.event is not None else None,
        "with": member_card(item.other, connected=connected),
        "my_decision": mine or None,
        "their_decision": theirs or None,
        "responded_at": responded,
        "mutual_connections": page.mutual.get(item.other_id, 0),
        "conversation_id": str(conversation.public_id) if conversation else None,
    }


# -- mutual connections and follow-all ---------------------------------------------------------
def _member(member_id: object) -> User:
    text = str(member_id or "").strip()
    if not _whole(text) or len(text) > 18 or int(text) == 0:
        raise _bad("member", "member is a member id: a positive whole number.")
    member = User.objects.select_related("profile").filter(pk=int(text), is_active=True).first()
    if member is None:
        raise NotFound("No such member.", code="member_not_found")
    return member


MUTUAL_LIST_MAX = 100


def mutual_connections(*, user: User, member_id: object) -> dict[str, Any]:
    """The members both the viewer and ``member`` are connected to (accepted matches), as far
    as privacy allows: none at all if the member's connections are hidden from the viewer,
    and never a private member."""
    member = _member(member_id)
    if member.pk == user.pk:
        raise _bad("member", "Mutual connections are between you and another member.")
    mine = _connections_of(user.pk)
    connected = mine.filter(other_id=member.pk).exists()
    # Beyond public members, only members one has a match with can be asked about: anyone
    # else answers like an unknown id (no names, and no telling which ids exist).
    if _privacy(member) != Profile.Privacy.PUBLIC and not (
        connected or FeedItem.objects.filter(member=user, other=member).exists()
    ):
        raise NotFound("No such member.", code="member_not_found")
    if not profile_visible(member, connected=connected):
        return {"member": member_card(member, connected=connected), "visible": False, "count": 0, "results": []}
    shared_ids = (
        _connections_of(member.pk)
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
        raise NotFound("No such match.", code="match_not_found")
    if match.status != ACCEPTED:
        raise Forbidden(
            "Follow-all works on an accepted match; this one is "
            f"{status_shown(match.status, match.expires_at, timezone.now())}.",
            code="match_not_accepted",
        )
    other = match.member_b if match.member_a_id == user.pk else match.member_a
    if not profile_visible(other, connected=True):
        # A private member's connections are theirs alone: not even how many there are.
        return FollowAllResult(followed=0, already_followed=0, skipped_privacy=0, network_visible=False)
    theirs = list(
        _connections_of(other.pk)
        .exclude(other_id=user.pk)
        .values_list("other_id", "other__profile__privacy")
        .distinct()
        .order_by("other_id")
    )
    my_connections = set(_connections_of(user.pk).values_list("other_id", flat=True))
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


def event_exists(event_id: int) -> bool:
    return Event.objects.filter(pk=event_id).exists()
