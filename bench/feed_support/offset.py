"""The plain alternative: the same feed, paged with OFFSET/LIMIT (``?page=N``).

Same member, filters, order and serialization as ``proposals.api.MatchFeedApi`` (it uses
``proposals.feed``'s ``_filtered``, ``_open``, ``_connections_around`` and ``item_data``);
only the paging differs. Its rows are read the plain way, the joins and OFFSET/LIMIT in one
query (the feed's own ``_rows`` picks ids from the index first, which would also make a deep
OFFSET cheap here and hide what plain offset paging costs). Like the keyset feed it reads ``page_size + 1``
rows to know whether a next page exists, so it pays no COUNT(*) per page (offset at its best).
``expiring_soon`` keeps the feed's two segments: OFFSET into the open pending matches
(soonest first), and once those run out, OFFSET into the rest (newest first); the size of the
first segment is counted only on the page where the second one starts from an offset. The
split uses the request's clock (an offset has nowhere to keep the first page's ``as_of`` as the
keyset cursor does); in the bench's data no open match expires within a day, so both agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import InvalidInput
from ops.db import db_now
from proposals.feed import (
    PENDING,
    FeedPage,
    FeedQuery,
    _connections_around,
    _filtered,
    _open,
    event_exists,
    feed_query_parse,
    item_data,
)

PAGE_MAX = 100_000


def _rows(qs: Any, limit: int) -> list[Any]:
    """Plain offset paging: the joined rows, OFFSET and LIMIT in one statement."""
    if limit <= 0:
        return []
    return list(qs.select_related("other__profile", "match__conversation", "event")[:limit])


def offset_page(*, user: User, query: FeedQuery, page: int, now: datetime) -> tuple[FeedPage, bool]:
    """Page ``page`` (from 1) of the member's feed by OFFSET; and whether there is a next one."""
    qs = _filtered(user=user, query=query, now=now)
    size = query.page_size
    offset = (page - 1) * size
    want = size + 1
    rows = []
    if query.sort == "newest":
        rows = _rows(qs.order_by("-created_at", "-id")[offset:], want)
    elif query.sort == "compatibility":
        rows = _rows(qs.order_by("-compatibility", "-id")[offset:], want)
    else:
        with_open = not query.statuses or PENDING in query.statuses
        rest_offset = offset
        if with_open:
            first = qs.filter(_open(now))
            rows = _rows(first.order_by("expires_at", "id")[offset:], want)
            # Fewer than asked: the rest starts on this page (at 0), or, when the offset is
            # past every open match, that far into the rest.
            rest_offset = 0 if rows else max(offset - first.count(), 0)
        if len(rows) < want:
            rest = qs.exclude(_open(now))
            rows += _rows(rest.order_by("-created_at", "-id")[rest_offset:], want - len(rows))
    has_next = len(rows) > size
    rows = rows[:size]
    mutual, connected = _connections_around(user=user, others=[row.other for row in rows])
    return FeedPage(items=rows, next_cursor=None, mutual=mutual, connected=connected), has_next


def page_parse(raw: str | None) -> int:
    text = (raw or "1").strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= PAGE_MAX:
        raise InvalidInput(
            f"page is a whole number from 1 to {PAGE_MAX}.", code="invalid_parameter", fields={"page": ["Invalid."]}
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
            raise InvalidInput("The offset feed pages by page, not cursor.", code="invalid_parameter")
        query = feed_query_parse(params)
        if query.event_id is not None and not event_exists(query.event_id):
            raise InvalidInput(f"There is no event {query.event_id}.", code="invalid_parameter")
        now = db_now()  # the clock MatchFeedApi uses
        result, has_next = offset_page(user=user, query=query, page=page, now=now)
        data: dict[str, Any] = {
            "results": [item_data(item, page=result, viewer=user, now=now) for item in result.items],
            "next_page": page + 1 if has_next else None,
            "page": page,
            "page_size": query.page_size,
            "sort": query.sort,
        }
        return Response(data)
