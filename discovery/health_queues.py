"""Health of discovery's two lease queues, as selectors: rows per status, and how long the
claimable queued rows have waited (p95 and oldest).

Cheap to import (models only: no services, flags or Celery), so SLOs, invariants and
commands can read ``discovery_queue_health()`` directly.

A row's *age* is how long it has been claimable and unclaimed: the database's now minus
its ``available_at`` (the enqueue time, or the end of a retry's backoff, or a requeue), as
``ops.oldest_queued_seconds`` measures it. Rows waiting out a backoff are not late yet:
they are counted as ``delayed`` and left out of the ages. The p95 is the nearest-rank
percentile (PostgreSQL's ``percentile_disc(0.95)``, the same rank computed portably on other
databases), so both give the same figure for the same rows.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

from django.db import connection, models
from django.db.models.functions import Now
from django.utils import timezone

from discovery.models import DiscoveryEvent, DiscoveryJob
from ops.models import LeaseQueueModel, QueueStatus

P95 = 0.95
STATUSES = (QueueStatus.QUEUED.value, QueueStatus.PROCESSING.value, QueueStatus.DEAD.value)


class QueueHealth(TypedDict):
    queue: str  # the ops queue label
    counts: dict[str, int]  # rows per status: queued, processing, dead (and done when asked)
    delayed: int  # queued rows waiting out a retry's backoff (not claimable yet)
    waiting: int  # claimable queued rows: the sample the ages are computed from
    p95_age_seconds: float | None  # None when nothing is waiting
    oldest_age_seconds: float | None


def lease_queue_health(*, model: type[LeaseQueueModel], include_done: bool = False) -> QueueHealth:
    """The health of the lease queue whose rows are ``model``'s. ``include_done`` also counts
    done rows (a scan of every finished row: for people, not for a check run every minute)."""
    statuses = (*STATUSES, QueueStatus.DONE.value) if include_done else STATUSES
    rows = model._default_manager.all()
    found = dict(
        rows.filter(status__in=statuses).values_list("status").annotate(n=models.Count("id")).values_list("status", "n")
    )
    counts = {status: int(found.get(status, 0)) for status in statuses}
    delayed = rows.filter(status=QueueStatus.QUEUED, available_at__gt=Now()).count()
    if connection.vendor == "postgresql":
        waiting, p95, oldest = _ages_postgresql(table=model._meta.db_table)
    else:
        waiting, p95, oldest = _ages_portable(model=model)
    return {
        "queue": model._meta.label_lower,
        "counts": counts,
        "delayed": delayed,
        "waiting": waiting,
        "p95_age_seconds": p95,
        "oldest_age_seconds": oldest,
    }


def _ages_postgresql(*, table: str) -> tuple[int, float | None, float | None]:
    sql = f"""
        SELECT count(*),
               percentile_disc(%(p)s) WITHIN GROUP (ORDER BY age),
               max(age)
        FROM (
            SELECT EXTRACT(EPOCH FROM (statement_timestamp() - available_at))::float8 AS age
            FROM {table}
            WHERE status = %(queued)s AND available_at <= statement_timestamp()
        ) AS waiting
    """  # noqa: S608 - the table name comes from model meta, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"p": P95, "queued": QueueStatus.QUEUED.value})
        count, p95, oldest = cursor.fetchone()
    return int(count), _seconds(p95), _seconds(oldest)


def _ages_portable(*, model: type[LeaseQueueModel]) -> tuple[int, float | None, float | None]:
    """The same figures with the ORM only (SQLite has no ordered-set aggregates): the row
    at the p95 rank of ages is the one at that rank from the newest ``available_at``."""
    waiting = model._default_manager.filter(status=QueueStatus.QUEUED, available_at__lte=Now())
    count = waiting.count()
    if count == 0:
        return 0, None, None
    now = timezone.now()
    rank = math.ceil(P95 * count)  # 1-based, ages ascending
    at_rank = waiting.order_by("-available_at", "-id").values_list("available_at", flat=True)[rank - 1]
    first = waiting.order_by("available_at", "id").values_list("available_at", flat=True)[0]
    return count, _seconds((now - at_rank).total_seconds()), _seconds((now - first).total_seconds())


def _seconds(value: Any) -> float | None:
    return None if value is None else round(max(float(value), 0.0), 3)


def discovery_queue_health(*, include_done: bool = False) -> QueueHealth:
    """The discovery queue's health (DiscoveryJob rows); its ``p95_age_seconds`` is the
    runbook's discovery-queue backlog figure (alert above 300 s)."""
    return lease_queue_health(model=DiscoveryJob, include_done=include_done)


def events_queue_health(*, include_done: bool = False) -> QueueHealth:
    """The events queue's health (DiscoveryEvent rows)."""
    return lease_queue_health(model=DiscoveryEvent, include_done=include_done)


# The queues by the short names the staff API uses.
QUEUE_HEALTH = {"discovery": discovery_queue_health, "events": events_queue_health}


def queue_dead_letters(*, name: str, limit: int = 100) -> list[dict[str, Any]]:
    """The open dead letters (not requeued) of one of discovery's queues, newest first; an
    empty list for a name that is not one of them (the API answers 404 before asking)."""
    from ops.models import DeadLetter

    labels = {"discovery": DiscoveryJob._meta.label_lower, "events": DiscoveryEvent._meta.label_lower}
    if name not in labels:
        return []
    rows = (
        DeadLetter.objects.filter(queue=labels[name], requeued_at__isnull=True)
        .order_by("-created_at", "-id")
        .values("id", "item_id", "reason", "attempts", "rescues", "last_error", "errors", "created_at")[:limit]
    )
    return [dict(row) for row in rows]
