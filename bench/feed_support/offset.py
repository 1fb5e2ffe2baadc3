"""The plain alternative: the same feed, paged with OFFSET/LIMIT (``?page=N``).

Same member, filters, order, statement and serialization as ``proposals.api.MatchFeedApi``
(``proposals.matches.sql``'s filters, row statement and ``item_data``); only the paging differs. The
page's rows are picked the plain way: the feed rows joined to their match and member, ordered,
then OFFSET and LIMIT, so the database joins every row it skips, as a ``select_related``
queryset sliced by a paginator does (the feed picks ids from the index first; with that, a
deep OFFSET would be cheaper and would hide what plain offset paging costs). Whether the other
member is a connection and the mutual count are computed for the page's rows only, as in the
feed. Like the keyset feed it reads ``page_size + 1`` rows to know whether a next page exists,
so it pays no COUNT(*) per page (offset at its best). ``expiring_soon`` keeps the feed's two
segments: OFFSET into the open pending matches (soonest first), and once those run out, OFFSET
into the rest (newest first); the size of the first segment is counted only on the page where
the second one starts from an offset. The split uses the database clock of each statement (an
offset has nowhere to keep the first page's ``as_of`` as the keyset cursor does); in the bench's
data no open match expires within a day, so they agree."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import ErrorCode, InvalidInput
from ops.db import prepared_rows
from proposals.matches import sql as feed
from proposals.matches.cards import item_data
from proposals.matches.params import FeedQuery, feed_query_parse
from proposals.matches.selectors import FeedPage, event_exists
from proposals.matches.terms import PENDING

PAGE_MAX = 100_000


def _picked(where: list[str], *, segment: int, column: str, descending: bool, offset: int, limit: int) -> str:
    way = "DESC" if descending else "ASC"
    return (
        f"SELECT f.id AS id, {segment} AS seg, f.{column} AS k FROM {feed._FEED} f"
        f" JOIN {feed._MATCH} m0 ON m0.id = f.match_id JOIN {feed._USER} u0 ON u0.id = f.other_id"
        f" WHERE {' AND '.join(where)} ORDER BY f.{column} {way}, f.id {way} LIMIT {int(limit)} OFFSET {int(offset)}"
    )


def _count(where: list[str], params: dict[str, Any]) -> int:
    return int(prepared_rows(f"SELECT COUNT(*) FROM {feed._FEED} f WHERE {' AND '.join(where)}", params)[0][0])


def offset_page(*, user: User, query: FeedQuery, page: int) -> tuple[FeedPage, bool]:
    """Page ``page`` (from 1) of the member's feed by OFFSET; and whether there is a next one."""
    params: dict[str, Any] = {}
    clock = feed._clock(params)
    now = clock.now
    where = feed._filters(member_id=user.pk, query=query, now=now, params=params)
    size = query.page_size
    offset = (page - 1) * size
    want = size + 1
    rows: list[feed.FeedRow] = []
    read_at = None
    if query.sort in ("newest", "compatibility"):
        column = "created_at" if query.sort == "newest" else "compatibility"
        picked = _picked(where, segment=0, column=column, descending=True, offset=offset, limit=want)
        rows, read_at = feed.rows_read(feed._statement(picked, feed._NEWEST_FIRST, clock), params)
    else:
        is_open = f"f.status = '{PENDING}' AND f.expires_at > {now}"
        rest_offset = offset
        if not query.statuses or PENDING in query.statuses:
            first = [*where, is_open]
            picked = _picked(first, segment=0, column="expires_at", descending=False, offset=offset, limit=want)
            rows, read_at = feed.rows_read(feed._statement(picked, feed._expiring_order("page"), clock), params)
            # Fewer than asked: the rest starts on this page (at 0), or, when the offset is
            # past every open match, that far into the rest.
            rest_offset = 0 if rows else max(offset - _count(first, params), 0)
        if len(rows) < want:
            rest = [*where, f"NOT ({is_open})"]
            picked = _picked(
                rest, segment=1, column="created_at", descending=True, offset=rest_offset, limit=want - len(rows)
            )
            more, read_at = feed.rows_read(feed._statement(picked, feed._expiring_order("page"), clock), params)
            rows += more
    has_next = len(rows) > size
    return FeedPage(items=rows[:size], next_cursor=None, now=read_at or timezone.now()), has_next


def page_parse(raw: str | None) -> int:
    text = (raw or "1").strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= PAGE_MAX:
        raise InvalidInput(
            f"page is a whole number from 1 to {PAGE_MAX}.",
            code=ErrorCode.INVALID_PARAMETER,
            fields={"page": ["Invalid."]},
        )
    return int(text)


class OffsetFeedApi(APIView):
    """GET /bench/matches-offset/?sort=...&page=N (bench only; never in the project's URLs)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        user = request.user
        assert isinstance(user, User)
        params = request.query_params.copy()
        page = page_parse(params.pop("page", [None])[-1])
        if "cursor" in params:
            raise InvalidInput("The offset feed pages by page, not cursor.", code=ErrorCode.INVALID_PARAMETER)
        query = feed_query_parse(params)
        if query.event_id is not None and not event_exists(query.event_id):
            raise InvalidInput(f"There is no event {query.event_id}.", code=ErrorCode.INVALID_PARAMETER)
        result, has_next = offset_page(user=user, query=query, page=page)
        data: dict[str, Any] = {
            "results": [item_data(item, now=result.now) for item in result.items],
            "next_page": page + 1 if has_next else None,
            "page": page,
            "page_size": query.page_size,
            "sort": query.sort,
        }
        return Response(data)
