"""The checks ops owns: every queue's leases are being swept, workers are alive, the
database has connections to spare."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import DurationField, ExpressionWrapper, F, Max
from django.db.models.functions import Now

from ops.invariants import Reading, figure_invariant, rows_invariant
from ops.models import DeadLetter
from ops.queue import PROCESSING, QUEUED, queues_all
from ops.selectors import database_connections, workers_stale


@rows_invariant(
    name="ops.expired_leases_released",
    app="ops",
    description="No row stays processing with a lease expired for more than 3 sweep periods",
)
def expired_leases_unreleased() -> list[str]:
    grace = Now() - timedelta(seconds=3 * settings.OPS_SWEEP_SECONDS)
    rows: list[str] = []
    for queue in queues_all():
        for item_id in queue.model._default_manager.filter(status=PROCESSING, lease_expires_at__lt=grace).values_list(
            "pk", flat=True
        )[:20]:
            rows.append(f"{queue.label}#{item_id}")
    return rows


@figure_invariant(
    name="ops.oldest_queued_seconds",
    app="ops",
    description="Seconds the oldest available row has waited in any queue",
    warn_above=60,
    critical_above=300,
    unit="s",
)
def oldest_queued_seconds() -> float | None:
    oldest: float = 0.0
    for queue in queues_all():
        # Age by the database's clock, like every other time in the queue.
        waited = (
            queue.model._default_manager.filter(status=QUEUED, available_at__lte=Now())
            .annotate(waited=ExpressionWrapper(Now() - F("available_at"), output_field=DurationField()))
            .aggregate(longest=Max("waited"))["longest"]
        )
        if waited is not None:
            oldest = max(oldest, waited.total_seconds())
    return oldest


@figure_invariant(
    name="ops.dead_letters_open",
    app="ops",
    description="Rows that died of errors or crashes, waiting for an operator (permanent input errors excluded)",
    warn_above=0,
    critical_above=100,
)
def dead_letters_open() -> float:
    # A 404 page or a refused host is the user's input, not an operations problem.
    return float(DeadLetter.objects.filter(requeued_at__isnull=True).exclude(reason="permanent").count())


@figure_invariant(
    name="ops.workers_stale",
    app="ops",
    description="Workers seen in the last day but silent for longer than OPS_WORKER_STALE_SECONDS",
    warn_above=0,
)
def stale_workers() -> float:
    return float(workers_stale().count())


@figure_invariant(
    name="ops.database_connections",
    app="ops",
    description="Database connections in use, as a share of max_connections (PostgreSQL)",
    warn_above=80,
    critical_above=90,
    unit="%",
)
def database_connections_used() -> Reading:
    # The runbook's "connection pool > 90 %": past max_connections every process that opens
    # a connection (a worker, beat, psql) fails with "too many clients", and nothing else
    # would notice until work stops.
    counts = database_connections()
    if counts is None:
        return Reading(value=None, detail="not applicable on SQLite")
    used, maximum = counts
    return Reading(value=round(100.0 * used / maximum, 1), detail=f"{used} of {maximum} connections in use")
