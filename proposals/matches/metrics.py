"""Business metrics of the matches, for staff: how many matches expire each day, the
expiration rate, how long members take to answer, and how many connections the two
members of a match already share.

Three statements whatever the number of matches (the database clock, the finished
matches of the window, the mutual-connection sample), each on an index:

* finished matches are read by ``decided_at`` through the partial index
  ``proposals_match_decided``, from the first day of the window on: the work grows with
  the matches that finished in the window, never with the table;
* the mutual-connection sample is the newest ``MUTUAL_SAMPLE_SIZE`` matches by primary
  key (a backward scan that stops there), of which those created in the window count;
  for each, the shared connections are a walk of the two members' ``accepted`` feed rows
  on the partial index ``proposals_feed_connections`` (member, other).

The window is whole days in UTC by the database's clock: ``days`` days ending today, so
the per-day series always has ``days`` entries, today's being the day so far. The result
is cached for ``CACHE_SECONDS`` per ``days``.

The statements are written for PostgreSQL and SQLite alike; only the date and interval
arithmetic differs (as in ``runs.selectors.match_runs_hourly``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import connection

from matchplatform.exceptions import ErrorCode, InvalidInput
from ops.db import db_now
from proposals.models import FeedItem, Match, MatchStatus

DAYS_DEFAULT = 30
DAYS_MAX = 365
MUTUAL_SAMPLE_SIZE = 1000
CACHE_SECONDS = 60
CACHE_KEY = "proposals:match-metrics:v1:{days}"

OUTCOMES = (MatchStatus.ACCEPTED.value, MatchStatus.REJECTED.value, MatchStatus.EXPIRED.value)

# (label, lowest count, highest count or None for no upper end), in order.
MUTUAL_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2-4", 2, 4),
    ("5-9", 5, 9),
    ("10-19", 10, 19),
    ("20+", 20, None),
)


def days_parse(raw: object, *, default: int = DAYS_DEFAULT, blank_is_default: bool = False) -> int:
    """``days`` from a query string: a whole number from 1 to ``DAYS_MAX``, as sent (no
    spaces); missing is ``default``, and so is empty where ``blank_is_default`` (a form's empty
    field). Anything else is a 400 naming the parameter."""
    values = raw if isinstance(raw, list | tuple) else [raw]
    values = [v for v in values if v is not None]
    if len(values) > 1:
        raise _bad_days("Give days once.")
    if not values or (blank_is_default and not str(values[0]).strip()):
        return default
    text = str(values[0])
    if not (text.isascii() and text.isdigit()) or len(text) > 3 or not 1 <= int(text) <= DAYS_MAX:
        raise _bad_days(f"days is a whole number from 1 to {DAYS_MAX}.")
    return int(text)


def _bad_days(message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.INVALID_PARAMETER, fields={"days": [message]})


# -- the clock and the window ----------------------------------------------------------
def window_start(now: datetime, days: int) -> datetime:
    """Midnight UTC of the first of the ``days`` days that end with ``now``'s day."""
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


# -- the statements -----------------------------------------------------------------------
_MATCH = Match._meta.db_table
_FEED = FeedItem._meta.db_table

_DAY_SQL = {
    "postgresql": "((m.decided_at AT TIME ZONE 'UTC')::date)",
    "sqlite": "date(m.decided_at)",
}
_SECONDS_SQL = {
    "postgresql": "EXTRACT(EPOCH FROM (m.{column} - m.created_at))",
    "sqlite": "((julianday(m.{column}) - julianday(m.created_at)) * 86400.0)",
}


def _vendor() -> str:
    return "sqlite" if connection.vendor == "sqlite" else "postgresql"


def _finished_sql() -> str:
    """Per day and outcome, the matches decided in the window and the members' answers
    (sum of seconds from the match's creation, and how many). Bounded by the index range
    ``decided_at >= start`` of ``proposals_match_decided``."""
    vendor = _vendor()
    day = _DAY_SQL[vendor]
    seconds_a = _SECONDS_SQL[vendor].format(column="responded_at_a")
    seconds_b = _SECONDS_SQL[vendor].format(column="responded_at_b")
    outcomes = ", ".join(f"'{o}'" for o in OUTCOMES)
    return f"""
        SELECT {day} AS day, m.status, COUNT(*) AS n,
               SUM({seconds_a}) AS a_seconds, COUNT(m.responded_at_a) AS a_n,
               SUM({seconds_b}) AS b_seconds, COUNT(m.responded_at_b) AS b_n
        FROM {_MATCH} m
        WHERE m.decided_at IS NOT NULL AND m.decided_at >= %s AND m.status IN ({outcomes})
        GROUP BY {day}, m.status
    """  # noqa: S608 - only table names, the vendor's own expressions and fixed statuses


def _mutual_sql() -> str:
    """For each sampled match, the distinct members both of its members are connected to
    (accepted feed rows); one row per count with the matches that have it. (Grouping by the
    count itself, not by a bucket expression, keeps the database from counting a match once
    per bucket boundary: the buckets are made from these few rows in Python.)"""
    return f"""
        WITH recent AS (
            SELECT m.id, m.member_a_id, m.member_b_id, m.created_at
            FROM {_MATCH} m ORDER BY m.id DESC LIMIT %s
        ), counted AS (
            SELECT (
                SELECT COUNT(DISTINCT fa.other_id)
                FROM {_FEED} fa
                WHERE fa.member_id = r.member_a_id AND fa.status = 'accepted'
                  AND EXISTS (
                      SELECT 1 FROM {_FEED} fb
                      WHERE fb.member_id = r.member_b_id AND fb.status = 'accepted' AND fb.other_id = fa.other_id
                  )
            ) AS n
            FROM recent r
            WHERE r.created_at >= %s
            -- No more rows than the sample, but a LIMIT keeps SQLite from folding this
            -- query into the outer one, which would count each match twice (group, output).
            LIMIT %s
        )
        SELECT c.n, COUNT(*) AS matches
        FROM counted c
        GROUP BY c.n
    """  # noqa: S608 - only table names


def _bucket_of(count: int) -> int:
    """The lower end of the MUTUAL_BUCKETS bucket that holds ``count``."""
    return max(low for _label, low, _high in MUTUAL_BUCKETS if count >= low)


def _param(value: datetime) -> Any:
    """A timestamp as the backend stores it (SQLite compares the text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _day_text(value: date | datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()[:10]


def _number(value: Decimal | float | int | None) -> float:
    return 0.0 if value is None else float(value)


# -- the figures ----------------------------------------------------------------------------
def match_metrics_compute(*, days: int = DAYS_DEFAULT) -> dict[str, Any]:
    """The figures, uncached (three statements)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= DAYS_MAX:
        raise _bad_days(f"days is a whole number from 1 to {DAYS_MAX}.")
    now = db_now()
    start = window_start(now, days)

    with connection.cursor() as cursor:
        cursor.execute(_finished_sql(), [_param(start)])
        finished_rows = cursor.fetchall()
        cursor.execute(_mutual_sql(), [MUTUAL_SAMPLE_SIZE, _param(start), MUTUAL_SAMPLE_SIZE])
        mutual_rows = cursor.fetchall()

    expired_by_day: dict[str, int] = {}
    outcomes = dict.fromkeys(OUTCOMES, 0)
    response_seconds = 0.0
    responses = 0
    for day, status, n, a_seconds, a_n, b_seconds, b_n in finished_rows:
        outcomes[status] += int(n)
        if status == MatchStatus.EXPIRED:
            key = _day_text(day)
            expired_by_day[key] = expired_by_day.get(key, 0) + int(n)
        response_seconds += _number(a_seconds) + _number(b_seconds)
        responses += int(a_n) + int(b_n)

    first_day = start.date()
    series = []
    for offset in range(days):
        key = (first_day + timedelta(days=offset)).isoformat()
        series.append({"date": key, "expired": expired_by_day.get(key, 0)})

    total = sum(outcomes.values())
    by_bucket: dict[int, int] = {}
    for count, matches in mutual_rows:
        low = _bucket_of(int(count))
        by_bucket[low] = by_bucket.get(low, 0) + int(matches)
    buckets = [
        {"label": label, "min": low, "max": high, "matches": by_bucket.get(low, 0)}
        for label, low, high in MUTUAL_BUCKETS
    ]
    return {
        "days": days,
        "window": {"start": start.isoformat(), "end": now.isoformat(), "timezone": "UTC"},
        "expired_per_day": series,
        "finished": {**outcomes, "total": total},
        "expiration_rate": round(outcomes[MatchStatus.EXPIRED] / total, 4) if total else None,
        "avg_response_seconds": round(response_seconds / responses, 1) if responses else None,
        "responses": responses,
        "mutual_connections": {
            "sample_size": sum(b["matches"] for b in buckets),
            "sample_limit": MUTUAL_SAMPLE_SIZE,
            "buckets": buckets,
        },
    }


def match_metrics(*, days: int = DAYS_DEFAULT) -> dict[str, Any]:
    """The matches' business metrics over the last ``days`` days (UTC days, by the
    database's clock, today included), cached for ``CACHE_SECONDS`` per ``days``:

    * ``expired_per_day``: every day of the window, oldest first, with the matches that
      expired that day (by ``decided_at``), zeros included;
    * ``finished``: matches decided in the window by outcome, and their ``total``;
      ``expiration_rate`` is expired / total (None when none finished);
    * ``avg_response_seconds``: the mean over every member's answer to a match decided in
      the window of (answered at - match created at), None without answers; ``responses``
      is how many answers that is;
    * ``mutual_connections``: over the newest matches created in the window (at most
      ``sample_limit``; ``sample_size`` of them), how many have 0, 1, 2-4, 5-9, 10-19 and
      20 or more connections that both their members share.
    """
    key = CACHE_KEY.format(days=days)
    cached = cache.get(key)
    if cached is not None:
        return dict(cached)
    figures = match_metrics_compute(days=days)
    cache.set(key, figures, CACHE_SECONDS)
    return figures
