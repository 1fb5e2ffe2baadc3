from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.db.transaction import TransactionManagementError

from ops.invariants import InvariantOutcome, invariants_run
from ops.models import DeadLetter, InvariantResult, QueueHistory, WorkerHeartbeat
from ops.queue import QUEUED, LeaseQueue, queue_get
from ops.slo.services import route_minutes_prune
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


def _in_callers_transaction(call: str) -> None:
    if not connection.in_atomic_block:
        raise TransactionManagementError(f"{call} joins the caller's transaction; call it inside transaction.atomic()")


def queue_item_enqueue(*, queue: LeaseQueue, item_id: int, event: str = "submit") -> None:
    """Record that the row ``item_id``, which the caller has just inserted as ``queued``,
    entered ``queue``, and wake a worker for it once the transaction commits.

    The domain inserts its own row (its fields are its own); this call writes the queue's
    part: the history row of the entry (``"" -> queued``, named ``event``) and the wake-up.
    It joins the caller's transaction rather than opening its own, so the history row
    commits or rolls back with the row it describes (DESIGN.md: every transition is
    recorded in its transaction) and the wake-up is sent only if both committed. Raises
    ``TransactionManagementError`` outside ``transaction.atomic()``."""
    _in_callers_transaction("queue_item_enqueue")
    QueueHistory.objects.create(queue=queue.label, item_id=item_id, to_status=QUEUED, event=event)
    if queue.wake is not None:
        queue.wake()


@dataclass(frozen=True)
class QueueItemsArchived:
    """What ``queue_items_archive`` took out of the queue's tables, per item id, oldest
    first, as JSON-ready dicts (times in ISO 8601). An item with nothing has no key."""

    history: dict[int, list[dict[str, Any]]]
    dead_letters: dict[int, list[dict[str, Any]]]


def _rows_take(rows: QuerySet[Any], fields: tuple[str, ...]) -> dict[int, list[dict[str, Any]]]:
    """These rows' ``fields`` per item id, oldest first (times in ISO 8601); then exactly the
    rows read are deleted."""
    taken: dict[int, list[dict[str, Any]]] = {}
    read: list[int] = []
    for row in rows.order_by("id").values(*dict.fromkeys(("id", "item_id", *fields))):
        read.append(row["id"])
        taken.setdefault(row["item_id"], []).append(
            {f: row[f].isoformat() if isinstance(row[f], datetime) else row[f] for f in fields}
        )
    if read:
        rows.model.objects.filter(pk__in=read).delete()
    return taken


def queue_items_archive(*, queue: LeaseQueue, item_ids: Sequence[int]) -> QueueItemsArchived:
    """Take the history and dead letters of these rows of ``queue`` out of ops' tables and
    hand them to the caller, who archives them with the rows themselves.

    History entries carry ``event``, ``from_status``, ``to_status``, ``lease_owner``,
    ``attempt``, ``error`` and ``created_at``; dead letters ``id``, ``reason``,
    ``attempts``, ``rescues``, ``last_error``, ``errors``, ``created_at`` and
    ``requeued_at``. Exactly the rows read are deleted, not whatever matches by the time
    of the delete. It joins the caller's transaction, which must also write the archive:
    nothing is deleted unless the archive of it commits too. The caller holds the items'
    rows locked and finished, so no transition adds history meanwhile. Raises
    ``TransactionManagementError`` outside ``transaction.atomic()``."""
    _in_callers_transaction("queue_items_archive")
    ids = list(item_ids)
    history = _rows_take(
        QueueHistory.objects.filter(queue=queue.label, item_id__in=ids),
        ("event", "from_status", "to_status", "lease_owner", "attempt", "error", "created_at"),
    )
    letters = _rows_take(
        DeadLetter.objects.filter(queue=queue.label, item_id__in=ids),
        ("id", "reason", "attempts", "rescues", "last_error", "errors", "created_at", "requeued_at"),
    )
    return QueueItemsArchived(history=history, dead_letters=letters)


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
    """Run every invariant, store the results and alert on each change of state that calls
    for it (ops.notify decides, once, whoever else is storing at the same time)."""
    from ops.notify import invariant_results_store

    outcomes = invariants_run()
    invariant_results_store(outcomes=outcomes)
    return outcomes


def dead_letters_requeue(*, dead_letter_ids: list[int]) -> int:
    """Requeue the rows behind these dead letters, queue by queue; returns how many were
    requeued (a row its domain refuses to take back is left dead, its letter open)."""
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
    """Drop check results, heartbeats and request metrics past their keep period (they are not
    business data)."""
    results, _ = InvariantResult.objects.filter(
        checked_at__lt=Now() - timedelta(days=settings.OPS_INVARIANT_RESULTS_KEEP_DAYS)
    ).delete()
    beats, _ = WorkerHeartbeat.objects.filter(last_seen__lt=Now() - timedelta(days=1)).delete()
    minutes = route_minutes_prune(older_than_days=settings.REQUEST_METRICS_KEEP_DAYS)
    return {"invariant_results": results, "heartbeats": beats, "route_minutes": minutes}


__all__ = [
    "QueueItemsArchived",
    "dead_letters_requeue",
    "heartbeat_beat",
    "heartbeat_remove",
    "invariants_check_and_store",
    "ops_prune",
    "queue_item_enqueue",
    "queue_items_archive",
    "task_wake",
]
