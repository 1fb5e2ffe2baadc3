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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from matchplatform.exceptions import ErrorCode, Forbidden, InvalidInput, NotFound
from ops.db import prepared_rows
from proposals.models import Conversation, Event, FeedItem, Follow, Match, MatchSource, MatchStatus, Profile
from proposals.services import public_id_parse

SORTS = ("newest", "compatibility", "expiring_soon")
STATUSES = tuple(s.value for s in MatchStatus)
SOURCES = tuple(s.value for s in MatchSource)
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
CURSOR_MAX_CHARS = 300
PARAMETERS = ("status", "event", "source", "min_compatibility", "sort", "cursor", "page_size")

ACCEPTED = MatchStatus.ACCEPTED
PENDING = MatchStatus.PENDING


# Ids are positive 64-bit integers, written plainly (no sign, no spaces, ASCII digits only):
# the schema says so (minimum 1, maximum ID_MAX), and anything else is a 400 naming the parameter.
ID_MAX = 2**63 - 1
_ID = re.compile(r"[1-9][0-9]{0,18}")
# A number as JSON writes it (what the schema's "number" means in a query string), not what
# float() would take: no spaces, no "inf", no "1_0", no other scripts' digits.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
STATUS_PATTERN = "^(" + "|".join(STATUSES) + ")(,(" + "|".join(STATUSES) + "))*$"


def id_parse(text: str) -> int | None:
    """A positive id from a query string, or None if the text is not one."""
    if _ID.fullmatch(text) is None or int(text) > ID_MAX:
        return None
    return int(text)


def _whole(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _bad(parameter: str, message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.INVALID_PARAMETER, fields={parameter: [message]})


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
        if len(value) > CURSOR_MAX_CHARS:
            raise _bad("cursor", message)
        try:
            raw = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            if not isinstance(raw, list) or len(raw) not in (5, 6):
                raise ValueError
            version, cursor_sort, segment, key, item_id = raw[:5]
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise _bad("cursor", message) from None
        bad_id = type(item_id) is not int or not 0 < item_id < 2**63
        if version != 1 or cursor_sort not in SORTS or segment not in (0, 1) or bad_id:
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
    """The parameter's one value, as sent (None if it is not given). Given, it must say
    something: an empty value is a 400 like any other bad value (leave it out for the default)."""
    values = _values(params, name)
    if len(values) > 1:
        raise _bad(name, f"Give {name} once.")
    if values and not values[0]:
        raise _bad(name, f"{name} is empty; leave it out for no {name} filter or the default.")
    return values[0] if values else None


def feed_query_parse(params: Mapping[str, Any]) -> FeedQuery:
    """The feed's query string, checked: every bad value is a 400 naming the parameter and
    what it allows. Values are taken as sent (no trimming), as the schema declares them."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise _bad(unknown[0], f"Unknown parameter {unknown[0]!r}. The feed takes: {', '.join(PARAMETERS)}.")

    statuses: list[str] = []
    for value in _values(params, "status"):
        for part in value.split(","):
            if part not in STATUSES:
                # The value is not repeated: it is the caller's, and may be anything.
                raise _bad("status", f"status is one of {', '.join(STATUSES)} (repeat it or separate with commas).")
            if part not in statuses:
                statuses.append(part)

    sort = _one(params, "sort") or "newest"
    if sort not in SORTS:
        raise _bad("sort", f"sort is one of {', '.join(SORTS)}.")

    source = _one(params, "source")
    if source is not None and source not in SOURCES:
        raise _bad("source", f"source is one of {', '.join(SOURCES)}.")

    event_id = None
    event = _one(params, "event")
    if event is not None:
        event_id = id_parse(event)
        if event_id is None:
            raise _bad("event", "event is an event id: a positive whole number.")

    min_compatibility = None
    raw_min = _one(params, "min_compatibility")
    if raw_min is not None:
        number = float(raw_min) if _NUMBER.fullmatch(raw_min) else math.nan
        if not 0.0 <= number <= 1.0:  # NaN fails this too
            raise _bad("min_compatibility", "min_compatibility is a number from 0 to 1.")
        min_compatibility = number

    page_size = PAGE_SIZE_DEFAULT
    raw_size = _one(params, "page_size")
    if raw_size is not None:
        if not _whole(raw_size) or len(raw_size) > 3 or not 1 <= int(raw_size) <= PAGE_SIZE_MAX:
            raise _bad("page_size", f"page_size is a whole number from 1 to {PAGE_SIZE_MAX}.")
        page_size = int(raw_size)

    raw_cursor = _one(params, "cursor")
    cursor = Cursor.decode(raw_cursor, sort=sort) if raw_cursor is not None else None
    return FeedQuery(
        statuses=tuple(sorted(statuses, key=STATUSES.index)),  # one statement text per set of statuses
        event_id=event_id,
        source=source,
        min_compatibility=min_compatibility,
        sort=sort,
        cursor=cursor,
        page_size=page_size,
    )


def status_shown(item_status: str, expires_at: datetime, now: datetime) -> str:
    return MatchStatus.EXPIRED if item_status == PENDING and expires_at <= now else item_status


# -- the page statement -------------------------------------------------------------------
# A page is one statement, whatever its size: the page's ids from one index range per
# segment (ORDER BY ... LIMIT on a feed index, read before any join), then for those rows
# only the match, the other member and their profile, the conversation, the event, whether
# the other member is one of the viewer's connections, how many connections the two share,
# and the database's clock. Its text depends only on the request's shape (sort, which
# filters, a cursor or not, page size), never on a value: on PostgreSQL it runs through
# ops.db.prepared_cursor, so each connection plans each shape once (planning cost more than
# running it). Statuses, sources and sizes written into the text are checked values from a
# fixed set (feed_query_parse); everything else is a parameter.
_FEED = FeedItem._meta.db_table
_MATCH = Match._meta.db_table
_USER = User._meta.db_table
_PROFILE = Profile._meta.db_table
_CONVERSATION = Conversation._meta.db_table
_EVENT = Event._meta.db_table
_PRIVATE = Profile.Privacy.PRIVATE.value


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One item of a member's feed, as the page statement reads it (its columns, in order)."""

    segment: int  # expiring_soon: 0 = open pending matches, 1 = the rest; 0 otherwise
    id: int
    status: str  # as stored; status_shown() is what the member sees
    compatibility: float
    created_at: datetime
    expires_at: datetime
    source: str
    other_id: int
    event_id: int | None
    event_name: str | None
    match_public_id: UUID
    my_decision: str  # "" until the viewer answers
    their_decision: str
    responded_at: datetime | None  # when the viewer answered
    display_name: str | None  # None: the other member has no profile
    username: str | None  # read only for a member with no profile
    privacy: str | None
    bio: str | None
    interests: list[str] | str | None  # PostgreSQL: the JSON text, decoded only if shown
    conversation_id: UUID | None
    connected: bool  # the other member is one of the viewer's connections
    mutual: int  # connections the two share, private ones left out; 0 where the viewer may not see them


_CONNECTED = f"""EXISTS (SELECT 1 FROM {_FEED} c WHERE c.member_id = %(member)s AND c.status = '{ACCEPTED}'
          AND c.other_id = f.other_id{{fence}})"""  # noqa: S608
_PUBLIC = Profile.Privacy.PUBLIC.value
_CONNECTIONS_ONLY = Profile.Privacy.CONNECTIONS.value
_COLUMNS = f"""page.seg, f.id, f.status, f.compatibility, f.created_at, f.expires_at, f.source, f.other_id,
  e.id, e.name, m.public_id,
  CASE WHEN m.member_a_id = %(member)s THEN m.decision_a ELSE m.decision_b END,
  CASE WHEN m.member_a_id = %(member)s THEN m.decision_b ELSE m.decision_a END,
  CASE WHEN m.member_a_id = %(member)s THEN m.responded_at_a ELSE m.responded_at_b END,
  p.display_name, CASE WHEN p.id IS NULL THEN (SELECT u.username FROM {_USER} u WHERE u.id = f.other_id) END,
  p.privacy, p.bio, p.interests, cv.public_id,
  {_CONNECTED},
  CASE WHEN p.privacy = '{_PUBLIC}' OR (p.privacy = '{_CONNECTIONS_ONLY}' AND {_CONNECTED}) THEN
  (SELECT COUNT(DISTINCT t.other_id) FROM {_FEED} t JOIN {_PROFILE} tp ON tp.user_id = t.other_id
    WHERE t.member_id = f.other_id AND t.status = '{ACCEPTED}' AND t.other_id <> %(member)s
      AND tp.privacy <> '{_PRIVATE}'
      AND EXISTS (SELECT 1 FROM {_FEED} c2 WHERE c2.member_id = %(member)s AND c2.status = '{ACCEPTED}'
                  AND c2.other_id = t.other_id{{fence}}))
  ELSE 0 END,
  {{now_us}}"""  # noqa: S608 (table names from the models, checked constants; values are parameters)

_JOINS = f"""JOIN {_FEED} f ON f.id = page.id
  JOIN {_MATCH} m ON m.id = f.match_id
  LEFT JOIN {_PROFILE} p ON p.user_id = f.other_id
  LEFT JOIN {_CONVERSATION} cv ON cv.match_id = f.match_id
  LEFT JOIN {_EVENT} e ON e.id = f.event_id"""


# "Is this member one of the viewer's connections?" is asked for a page's few rows (and for
# each connection of the other member, to count the mutual ones): one probe of the viewer's
# connections index each. Left to itself PostgreSQL turns the EXISTS into a semi-join that
# reads all of the viewer's connections (1,600 rows for a busy member) once per page row
# (13 ms a page in bench/feed); OFFSET 0 keeps it a per-row probe (PostgreSQL does not
# flatten an EXISTS whose query has an OFFSET).
_FENCE = " OFFSET 0"


def _statement(picked: str, order: str, clock: _Clock, *, before: str = "") -> str:
    """The page's rows: ``picked`` yields (id, seg, k) for the page's items (``before``: CTEs
    it reads); ``order`` puts them in the sort's order by those three columns."""
    columns = _columns(clock.micros, connection.vendor == "postgresql")
    return f"WITH {before}page AS ({picked})\nSELECT {columns}\nFROM page\n  {_JOINS}\nORDER BY {order}"


@cache
def _columns(now_us: str, fenced: bool) -> str:
    """The select list, filled in once per database (the clock's SQL and the fence differ)."""
    return _COLUMNS.format(now_us=now_us, fence=_FENCE if fenced else "")


@dataclass(frozen=True)
class _Clock:
    now: str  # SQL for "now", to compare with timestamps
    micros: str  # SQL for "now" in whole microseconds since 1970 (read back exactly, and cheaply)


def _clock(params: dict[str, Any]) -> _Clock:
    """The database's clock, one value for the whole statement. SQLite runs in this process,
    so its clock is this machine's: passed in."""
    if connection.vendor == "postgresql":
        return _Clock("statement_timestamp()", "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000)::bigint")
    now = timezone.now()
    params["now"] = connection.ops.adapt_datetimefield_value(now)
    params["now_us"] = (now - _EPOCH) // timedelta(microseconds=1)
    return _Clock("%(now)s", "%(now_us)s")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _status_sql(status: str, now: str) -> str:
    if status not in STATUSES:  # written into the statement: only the fixed set
        raise ValueError(status)
    if status == PENDING:
        return f"(f.status = '{PENDING}' AND f.expires_at > {now})"
    if status == MatchStatus.EXPIRED:
        return f"(f.status = '{MatchStatus.EXPIRED}' OR (f.status = '{PENDING}' AND f.expires_at <= {now}))"
    return f"f.status = '{status}'"


def _filters(*, member_id: int, query: FeedQuery, now: str, params: dict[str, Any]) -> list[str]:
    where = ["f.member_id = %(member)s"]
    params["member"] = member_id
    if query.statuses:
        where.append("(" + " OR ".join(_status_sql(s, now) for s in query.statuses) + ")")
    if query.event_id is not None:
        where.append("f.event_id = %(event)s")
        params["event"] = query.event_id
    if query.source is not None:
        if query.source not in SOURCES:
            raise ValueError(query.source)
        where.append(f"f.source = '{query.source}'")
    if query.min_compatibility is not None:
        where.append("f.compatibility >= %(min_compatibility)s")
        params["min_compatibility"] = query.min_compatibility
    return where


def _after(column: str, cursor: Cursor, *, descending: bool, params: dict[str, Any]) -> str:
    # "key <= k AND (key < k OR id < i)" rather than the OR alone, so the index range starts
    # at the cursor instead of at the member's first row.
    key = cursor.key
    params["key"] = connection.ops.adapt_datetimefield_value(key) if isinstance(key, datetime) else key
    params["key_id"] = cursor.id
    wide, strict = ("<=", "<") if descending else (">=", ">")
    return f"f.{column} {wide} %(key)s AND (f.{column} {strict} %(key)s OR f.id {strict} %(key_id)s)"


def _segment(where: list[str], *, segment: int, column: str, descending: bool, limit: int) -> str:
    way = "DESC" if descending else "ASC"
    return (
        f"SELECT f.id AS id, {segment} AS seg, f.{column} AS k FROM {_FEED} f WHERE {' AND '.join(where)}"  # noqa: S608
        f" ORDER BY f.{column} {way}, f.id {way} LIMIT {int(limit)}"
    )


_NEWEST_FIRST = "page.k DESC, page.id DESC"


def _expiring_order(alias: str) -> str:
    """Open pending matches (seg 0) soonest first, then the rest (seg 1) newest first."""
    a = alias
    first = f"CASE WHEN {a}.seg = 0 THEN {a}.k END, CASE WHEN {a}.seg = 0 THEN {a}.id END"
    return f"{a}.seg, {first}, {a}.k DESC, {a}.id DESC"


def page_statement(*, member_id: int, query: FeedQuery) -> tuple[str, dict[str, Any]] | None:
    """The statement for one page of the member's feed (``page_size + 1`` rows at most, so
    the caller knows whether another page follows), and its parameters; None when the query
    can match nothing."""
    params: dict[str, Any] = {}
    clock = _clock(params)
    now = clock.now
    where = _filters(member_id=member_id, query=query, now=now, params=params)
    want = query.page_size + 1
    cursor = query.cursor
    if query.sort in ("newest", "compatibility"):
        column = "created_at" if query.sort == "newest" else "compatibility"
        if cursor is not None:
            where = [*where, _after(column, cursor, descending=True, params=params)]
        picked = _segment(where, segment=0, column=column, descending=True, limit=want)
        return _statement(picked, _NEWEST_FIRST, clock), params

    # expiring_soon: the moment splitting open pending matches from the rest is the first
    # page's clock, carried in the cursor for the whole walk.
    if cursor is not None and cursor.as_of is not None:
        as_of = "%(as_of)s"
        params["as_of"] = connection.ops.adapt_datetimefield_value(cursor.as_of)
    else:
        as_of = now
    is_open = f"f.status = '{PENDING}' AND f.expires_at > {as_of}"
    first: str | None = None
    rest: str | None = None
    if (not query.statuses or PENDING in query.statuses) and (cursor is None or cursor.segment == 0):
        where_first = [*where, is_open]
        if cursor is not None:
            where_first.append(_after("expires_at", cursor, descending=False, params=params))
        first = _segment(where_first, segment=0, column="expires_at", descending=False, limit=want)
    # With pending as the only status the rest is empty: every open match is in the first part.
    if query.statuses != (PENDING,):
        where_rest = [*where, f"NOT ({is_open})"]
        if cursor is not None and cursor.segment == 1:
            where_rest.append(_after("created_at", cursor, descending=True, params=params))
        rest = _segment(where_rest, segment=1, column="created_at", descending=True, limit=want)
    order = _expiring_order("page")
    if first is None or rest is None:
        only = first or rest
        return (_statement(only, order, clock), params) if only else None
    # Both parts: the rest is read only when the open matches do not fill the page.
    picked = (
        f"SELECT id, seg, k FROM (SELECT * FROM first_part UNION ALL SELECT * FROM ({rest}) AS r"  # noqa: S608
        f" WHERE (SELECT COUNT(*) FROM first_part) < {want}) AS parts ORDER BY {_expiring_order('parts')} LIMIT {want}"
    )
    return _statement(picked, order, clock, before=f"first_part AS ({first}), "), params


def _aware_dt(value: Any) -> Any:
    """SQLite gives a UTC timestamp as naive: a datetime for a column, text for an expression."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _uuid(value: Any) -> UUID | None:
    return value if value is None or isinstance(value, UUID) else UUID(str(value))


def _read(sql: str, params: dict[str, Any]) -> tuple[list[FeedRow], datetime]:
    raw = prepared_rows(sql, params)
    if not raw:
        return [], timezone.now()
    now = _EPOCH + timedelta(microseconds=int(raw[0][-1]))
    if connection.vendor == "postgresql":  # psycopg already gives each column its Python type
        return [FeedRow(*r[:-1]) for r in raw], now
    return [_converted(r) for r in raw], now


# SQLite's types, per FeedRow field: text or naive timestamps, hex UUIDs, 0/1 booleans.
_FROM_SQLITE: dict[str, Any] = {
    "created_at": _aware_dt,
    "expires_at": _aware_dt,
    "responded_at": _aware_dt,
    "match_public_id": _uuid,
    "conversation_id": _uuid,
    "connected": bool,
    "mutual": lambda v: int(v or 0),
}
_ROW_FIELDS = [f.name for f in fields(FeedRow)]


def _converted(r: Sequence[Any]) -> FeedRow:
    """A row as SQLite returns it, in FeedRow's types."""
    return FeedRow(*(_FROM_SQLITE[n](v) if n in _FROM_SQLITE else v for n, v in zip(_ROW_FIELDS, r, strict=False)))


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
    rows, now = _read(*built)
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


# -- privacy ------------------------------------------------------------------------------
def _privacy(member: User) -> str:
    profile = getattr(member, "profile", None)
    return profile.privacy if profile is not None else Profile.Privacy.PRIVATE


def _visible(privacy: str | None, *, connected: bool) -> bool:
    return privacy == Profile.Privacy.PUBLIC or (privacy == Profile.Privacy.CONNECTIONS and connected)


def profile_visible(member: User, *, connected: bool) -> bool:
    """Whether a viewer may see this member's profile and connections: public members to
    everyone, connections-only members to their connections, private members to nobody."""
    return _visible(_privacy(member), connected=connected)


def _card(
    *,
    member_id: int,
    username: str | None,
    display_name: str | None,
    privacy: str | None,
    bio: str | None,
    interests: list[str] | str | None,
    connected: bool,
) -> dict[str, Any]:
    """What a viewer may see of a member (``display_name`` None: the member has no profile)."""
    privacy = privacy if display_name is not None and privacy is not None else Profile.Privacy.PRIVATE
    data: dict[str, Any] = {
        "member_id": member_id,
        "display_name": display_name if display_name is not None else username,
        "privacy": privacy,
    }
    if display_name is not None and _visible(privacy, connected=connected):
        data.update(bio=bio, interests=json.loads(interests) if isinstance(interests, str) else interests)
    return data


def member_card(member: User, *, connected: bool) -> dict[str, Any]:
    profile = getattr(member, "profile", None)
    return _card(
        member_id=member.pk,
        username=member.get_username(),
        display_name=profile.display_name if profile is not None else None,
        privacy=profile.privacy if profile is not None else None,
        bio=profile.bio if profile is not None else None,
        interests=profile.interests if profile is not None else None,
        connected=connected,
    )


def _connections_of(member_id: int) -> QuerySet[FeedItem]:
    return FeedItem.objects.filter(member_id=member_id, status=ACCEPTED)


def _hidden_connection(viewer: User) -> Q:
    """A mutual connection stays out of lists when they are private. (A connections-only
    member in a *mutual* list is the viewer's own connection, so may be shown.)"""
    return Q(other__profile__privacy=Profile.Privacy.PRIVATE) | Q(other__profile__isnull=True) | Q(other_id=viewer.pk)


# -- one match -------------------------------------------------------------------------
def feed_item_for(*, user: User, match_id: object) -> FeedPage:
    """The member's feed item of one match (the same statement as a page, for one row)."""
    params: dict[str, Any] = {
        "member": user.pk,
        "match": Match._meta.get_field("public_id").get_db_prep_value(public_id_parse(match_id), connection),
    }
    clock = _clock(params)
    picked = (
        f"SELECT f.id AS id, 0 AS seg, f.created_at AS k FROM {_FEED} f JOIN {_MATCH} pm ON pm.id = f.match_id"  # noqa: S608
        " WHERE f.member_id = %(member)s AND pm.public_id = %(match)s"
    )
    rows, now_value = _read(_statement(picked, _NEWEST_FIRST, clock), params)
    if not rows:
        raise NotFound("No such match.", code=ErrorCode.MATCH_NOT_FOUND)
    return FeedPage(items=rows[:1], next_cursor=None, now=now_value)


def item_data(item: FeedRow, *, now: datetime) -> dict[str, Any]:
    status = status_shown(item.status, item.expires_at, now)
    left = None
    if status == PENDING:
        left = max(int((item.expires_at - now).total_seconds()), 0)
    visible = _visible(item.privacy if item.display_name is not None else None, connected=item.connected)
    return {
        "match_id": str(item.match_public_id),
        "status": status,
        "compatibility": item.compatibility,
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "seconds_left": left,
        "source": item.source,
        "event": {"id": item.event_id, "name": item.event_name} if item.event_id is not None else None,
        "with": _card(
            member_id=item.other_id,
            username=item.username,
            display_name=item.display_name,
            privacy=item.privacy,
            bio=item.bio,
            interests=item.interests,
            connected=item.connected,
        ),
        "my_decision": item.my_decision or None,
        "their_decision": item.their_decision or None,
        "responded_at": item.responded_at,
        "mutual_connections": item.mutual if visible else 0,
        "conversation_id": str(item.conversation_id) if item.conversation_id else None,
    }


# -- mutual connections and follow-all ---------------------------------------------------------
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
    mine = _connections_of(user.pk)
    myself = member.pk == user.pk
    connected = myself or mine.filter(other_id=member.pk).exists()
    # Beyond public members, only members one has a match with can be asked about: anyone
    # else answers like an unknown id (no names, and no telling which ids exist).
    if _privacy(member) != Profile.Privacy.PUBLIC and not (
        connected or FeedItem.objects.filter(member=user, other=member).exists()
    ):
        raise NotFound("No such member.", code=ErrorCode.MEMBER_NOT_FOUND)
    if not myself and not profile_visible(member, connected=connected):
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
