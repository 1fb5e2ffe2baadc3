"""The feed's query string, parsed strictly into a ``FeedQuery``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proposals.ids import id_parse
from proposals.matches.cursor import Cursor
from proposals.matches.terms import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PARAMETERS, SORTS, SOURCES, STATUSES
from proposals.matches.terms import bad_parameter as _bad

# A number as JSON writes it (what the schema's "number" means in a query string), not what
# float() would take: no spaces, no "inf", no "1_0", no other scripts' digits.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _whole(text: str) -> bool:
    return text.isascii() and text.isdigit()


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
