from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now

from ops.invariants import InvariantOutcome, invariants_run
from ops.models import InvariantResult, WorkerHeartbeat
from ops.queue import queue_get
from ops.worker import worker_counters, worker_id

logger = logging.getLogger(__name__)


def task_wake(*, send: Callable[[], object]) -> None:
    """Wake a worker through the broker once the current transaction commits.

    Postgres holds the work; the message is only a nudge, so a broker that is down must
    not fail the request (the beat drain sweep picks the row up)."""
    if not settings.OPS_WAKE_WORKERS:
        return

    def _send() -> None:
        try:
            send()
        except Exception:
            logger.warning("could not wake a worker; the drain sweep will pick the work up", exc_info=True)

    transaction.on_commit(_send)


def heartbeat_beat(*, queues: list[str]) -> None:
    """Record that this worker process is alive, with its counters so far."""
    processed, failed, lost = worker_counters().snapshot()
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id(),
        defaults={
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "queues": queues,
            "processed": processed,
            "failed": failed,
            "leases_lost": lost,
            "last_seen": Now(),
        },
    )


def heartbeat_remove() -> None:
    """A worker shutting down cleanly leaves no row behind to look stale."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id()).delete()


def invariants_check_and_store() -> list[InvariantOutcome]:
    outcomes = invariants_run()
    InvariantResult.objects.bulk_create(
        [
            InvariantResult(name=o.name, app=o.app, state=o.state, value=o.value, sample=o.sample, detail=o.detail)
            for o in outcomes
        ]
    )
    return outcomes


def dead_letters_requeue(*, dead_letter_ids: list[int]) -> int:
    """Requeue the rows behind these dead letters, queue by queue; returns how many were
    requeued (a row its domain refuses to take back is left dead, its letter open)."""
    from ops.models import DeadLetter

    by_queue: dict[str, list[int]] = {}
    for queue, item_id in DeadLetter.objects.filter(pk__in=dead_letter_ids, requeued_at__isnull=True).values_list(
        "queue", "item_id"
    ):
        by_queue.setdefault(queue, []).append(item_id)
    count = 0
    for label, item_ids in by_queue.items():
        count += len(queue_get(label).requeue_dead(item_ids=item_ids))
    return count


def ops_prune() -> dict[str, int]:
    """Drop check results and heartbeats past their keep period (they are not business data)."""
    results, _ = InvariantResult.objects.filter(
        checked_at__lt=Now() - timedelta(days=settings.OPS_INVARIANT_RESULTS_KEEP_DAYS)
    ).delete()
    beats, _ = WorkerHeartbeat.objects.filter(last_seen__lt=Now() - timedelta(days=1)).delete()
    return {"invariant_results": results, "heartbeats": beats}


__all__ = [
    "dead_letters_requeue",
    "heartbeat_beat",
    "heartbeat_remove",
    "invariants_check_and_store",
    "ops_prune",
    "task_wake",
]
