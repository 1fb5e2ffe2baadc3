from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Now

from ops.invariants import InvariantOutcome, invariants_all
from ops.models import InvariantResult, QueueHistory, WorkerHeartbeat
from ops.queue import queues_all


def workers_stale(*, older_than_seconds: float | None = None) -> QuerySet[WorkerHeartbeat]:
    seconds = settings.OPS_WORKER_STALE_SECONDS if older_than_seconds is None else older_than_seconds
    return WorkerHeartbeat.objects.filter(last_seen__lt=Now() - timedelta(seconds=seconds)).order_by("last_seen")


def workers_live(*, within_seconds: float | None = None) -> QuerySet[WorkerHeartbeat]:
    seconds = settings.OPS_WORKER_STALE_SECONDS if within_seconds is None else within_seconds
    return WorkerHeartbeat.objects.filter(last_seen__gte=Now() - timedelta(seconds=seconds)).order_by("worker_id")


def queue_depths() -> dict[str, dict[str, int]]:
    return {queue.label: queue.depths() for queue in queues_all()}


def queue_history_for(*, queue: str, item_id: int) -> QuerySet[QueueHistory]:
    return QueueHistory.objects.filter(queue=queue, item_id=item_id).order_by("id")


def invariant_results_latest() -> list[InvariantOutcome]:
    """The newest stored result of every registered invariant (those never run are left out)."""
    registered = {inv.name: inv for inv in invariants_all()}
    latest: dict[str, InvariantResult] = {}
    cutoff = Now() - timedelta(minutes=10)
    for result in InvariantResult.objects.filter(name__in=list(registered), checked_at__gte=cutoff).order_by(
        "name", "-checked_at"
    ):
        latest.setdefault(result.name, result)
    return [
        InvariantOutcome(
            name=r.name,
            app=r.app,
            description=registered[r.name].description,
            state=r.state,
            value=r.value,
            detail=r.detail,
            seconds=0.0,
            sample=r.sample,
        )
        for r in latest.values()
    ]


def _pool_busy() -> bool:
    """Every connection of this web process's pool is serving a request and it may open no
    more: the database is answering them, so it is reachable, and a ping would only queue
    behind them for up to DB_POOL_TIMEOUT (longer than a load balancer's probe waits)."""
    if connection.connection is not None:
        return False  # this thread holds a connection already: ping on it
    pool = getattr(connection, "pool", None)  # Django's psycopg pool (None when not pooled)
    if pool is None:
        return False
    stats = pool.get_stats()
    return stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= pool.max_size


def database_ping() -> dict[str, Any]:
    if _pool_busy():
        # A node at full load is busy, not down: readiness must not take every node of a
        # loaded cluster out of its load balancer at once.
        return {"ok": True, "vendor": connection.vendor, "busy": True}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        return {"ok": False, "vendor": connection.vendor, "error": f"{type(exc).__name__}: {exc}"[:300]}


def database_connections() -> tuple[int, int] | None:
    """(connections open, max_connections) on PostgreSQL; None on a database without a
    server-wide connection limit (SQLite).

    Counted from pg_stat_database, which every role may read (pg_stat_activity hides other
    roles' sessions from a role without pg_read_all_stats)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COALESCE(sum(numbackends), 0) FROM pg_stat_database),"
            " current_setting('max_connections')::int"
        )
        used, maximum = cursor.fetchone()
    return int(used), int(maximum)


def broker_ping() -> dict[str, Any]:
    from kombu import Connection

    url = str(settings.CELERY_BROKER_URL)
    transport = url.split("://", 1)[0]
    timeout = settings.OPS_HEALTH_BROKER_TIMEOUT_SECONDS
    try:
        with Connection(
            url, connect_timeout=timeout, transport_options=dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=int(max(timeout, 1)))
        return {"ok": True, "transport": transport}
    except Exception as exc:
        return {"ok": False, "transport": transport, "error": f"{type(exc).__name__}: {exc}"[:300]}
