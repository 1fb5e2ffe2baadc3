"""The feed's page statement: one SQL statement per page, whatever its size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from ops.db import prepared_rows
from proposals.matches.cursor import Cursor
from proposals.matches.params import FeedQuery
from proposals.matches.terms import ACCEPTED, PENDING, SOURCES, STATUSES
from proposals.models import Conversation, Event, FeedItem, Match, MatchStatus, Profile

# -------------------------------------------------------------------
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


def rows_read(sql: str, params: dict[str, Any]) -> tuple[list[FeedRow], datetime]:
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


def item_statement(*, member_id: int, match_public_id: UUID) -> tuple[str, dict[str, Any]]:
    """The statement for the member's feed item of one match (a page's statement, one row)."""
    params: dict[str, Any] = {
        "member": member_id,
        "match": Match._meta.get_field("public_id").get_db_prep_value(match_public_id, connection),
    }
    clock = _clock(params)
    picked = (
        f"SELECT f.id AS id, 0 AS seg, f.created_at AS k FROM {_FEED} f JOIN {_MATCH} pm ON pm.id = f.match_id"  # noqa: S608
        " WHERE f.member_id = %(member)s AND pm.public_id = %(match)s"
    )
    return _statement(picked, _NEWEST_FIRST, clock), params
