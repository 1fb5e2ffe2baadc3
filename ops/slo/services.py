"""Writes of the request metrics: adding a flush's counts to the per-minute rows, pruning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ops.models import LATENCY_FIELDS, RouteMinute

# Rows per INSERT statement (a flush is usually a few dozen rows).
_BATCH = 200


@dataclass(frozen=True)
class RouteMinuteDelta:
    """Counts to add to one (minute, route, flag, cohort) row."""

    minute: datetime
    route: str
    flag: str
    cohort: str
    count: int
    errors: int
    duration_ms_sum: float
    buckets: tuple[int, ...]

    def sort_key(self) -> tuple[datetime, str, str, str]:
        return (self.minute, self.route, self.flag, self.cohort)


def _upsert_sql(rows: int) -> str:
    q = connection.ops.quote_name
    table = q(RouteMinute._meta.db_table)
    key = ["minute", "route", "flag", "cohort"]
    added = ["count", "errors", "duration_ms_sum", *LATENCY_FIELDS]
    columns = ", ".join(q(c) for c in [*key, *added])
    one = "(" + ", ".join(["%s"] * (len(key) + len(added))) + ")"
    updates = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in added)
    # Works as is on PostgreSQL and on SQLite (3.24+): the row is created or its counters
    # incremented in one statement, so concurrent flushes from any number of processes add up.
    conflict = ", ".join(q(c) for c in key)
    values = ", ".join([one] * rows)
    sql = f"INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"  # noqa: S608 - names from the model, values are parameters
    return sql


def route_minutes_add(*, deltas: Sequence[RouteMinuteDelta]) -> int:
    """Add ``deltas`` to their rows, all or nothing. Returns the number of rows touched."""
    if not deltas:
        return 0
    # One order for every writer: two flushes touching the same rows lock them in the same
    # order and cannot deadlock.
    ordered = sorted(deltas, key=RouteMinuteDelta.sort_key)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(ordered), _BATCH):
            batch = ordered[start : start + _BATCH]
            params: list[Any] = []
            for d in batch:
                params += [
                    connection.ops.adapt_datetimefield_value(d.minute),
                    d.route,
                    d.flag,
                    d.cohort,
                    d.count,
                    d.errors,
                    d.duration_ms_sum,
                    *d.buckets,
                ]
            cursor.execute(_upsert_sql(len(batch)), params)
    return len(ordered)


def route_minutes_prune(*, older_than_days: int) -> int:
    """Delete the minutes older than ``older_than_days`` days. Returns how many rows went."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    with transaction.atomic():
        deleted, _ = RouteMinute.objects.filter(minute__lt=cutoff).delete()
    return deleted
