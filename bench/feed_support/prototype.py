"""A prototype of the suggested fix, measured next to the real feed (not gating).

``proposals.feed._rows`` joins the member, profile, match, conversation and event rows to the
feed rows and then applies ``ORDER BY ... LIMIT``. When PostgreSQL underestimates how many of a
member's feed rows match (a member with thousands of open pending matches, ``expiring_soon``
deep in the open segment), it picks a bitmap scan, joins *every* matching row and sorts them
(EXPLAIN: ``Limit > Sort > Hash Join``), so the page costs what the rest of the segment costs.

The prototype picks the page's ids first, in a subquery that reads only the feed index
(``ORDER BY ... LIMIT`` on ``proposals_feed_*``: an index-only range), and joins the other tables
to those ``page_size + 1`` rows only (a "deferred join"):

    ids = qs.values("pk")[:limit]
    FeedItem.objects.filter(pk__in=ids).select_related(...).order_by(*qs.query.order_by)

``/bench/matches-deferred/`` serves ``proposals.api.MatchFeedApi`` unchanged, with
``proposals.feed._rows`` swapped for ``rows_deferred`` for that request's thread only (the
switch calls the original function for every other request, so the keyset and offset rows
measure the project's code as it is).
"""

from __future__ import annotations

import threading
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

import proposals.feed as feed
from proposals.api import MatchFeedApi
from proposals.models import FeedItem

_local = threading.local()
_original_rows = feed._rows


def rows_deferred(qs: Any, limit: int) -> list[FeedItem]:
    if limit <= 0:
        return []
    ids = qs.values("pk")[:limit]
    rows = FeedItem.objects.filter(pk__in=ids).select_related("other__profile", "match__conversation", "event")
    return list(rows.order_by(*qs.query.order_by))


def _rows_switch(qs: Any, limit: int) -> list[FeedItem]:
    if getattr(_local, "deferred", False):
        return rows_deferred(qs, limit)
    return _original_rows(qs, limit)


def install() -> None:
    if feed._rows is not _rows_switch:
        feed._rows = _rows_switch


class DeferredFeedApi(MatchFeedApi):
    """GET /bench/matches-deferred/: the keyset feed with the deferred-join prototype."""

    def get(self, request: Request) -> Response:
        _local.deferred = True
        try:
            return super().get(request)
        finally:
            _local.deferred = False
