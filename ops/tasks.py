from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from ops.queue import queues_all

logger = logging.getLogger(__name__)


@shared_task(name="ops.release_expired", time_limit=60, soft_time_limit=50)
def release_expired() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for queue in queues_all():
        result = queue.release_expired()
        out[queue.label] = {"requeued": len(result.requeued), "dead": len(result.dead)}
        if result.requeued and queue.wake is not None:
            queue.wake()
    return out


@shared_task(name="ops.invariants_check", time_limit=120, soft_time_limit=100)
def invariants_check() -> dict[str, str]:
    from ops.services import invariants_check_and_store

    # Checks run outside any transaction; storing them also decides, once, which changes
    # of state to alert on (ops/notify.py).
    outcomes = invariants_check_and_store()
    return {o.name: o.state for o in outcomes}


@shared_task(name="ops.alert_deliver", bind=True, acks_late=True, time_limit=60, soft_time_limit=50)
def alert_deliver(self: Task[Any, Any], *, channel: str, message: dict[str, Any]) -> None:
    """Deliver one alert to one channel; a failure that may pass is retried with backoff."""
    from ops.notify import AlertDeliveryFailed, AlertRejected, alert_channel_deliver, alert_retry_countdown

    try:
        alert_channel_deliver(channel=channel, message=message)
    except AlertRejected:
        # Retrying would send the same refused message again.
        logger.exception("the %s alert %s was refused", channel, message.get("key"))
    except AlertDeliveryFailed as exc:
        if self.request.retries >= settings.OPS_ALERT_MAX_RETRIES:
            logger.error(
                "gave up on the %s alert %s after %d retries: %s",
                channel,
                message.get("key"),
                self.request.retries,
                exc,
            )
            return
        raise self.retry(
            exc=exc,
            countdown=alert_retry_countdown(retries=self.request.retries),
            max_retries=settings.OPS_ALERT_MAX_RETRIES,
        ) from exc


@shared_task(name="ops.prune", time_limit=300, soft_time_limit=280)
def prune() -> dict[str, int]:
    from ops.services import ops_prune

    return ops_prune()
