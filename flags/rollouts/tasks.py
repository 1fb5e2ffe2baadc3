"""The controller's beat tasks (settings.CELERY_BEAT_SCHEDULE: ``flags.rollouts_tick`` every
``ROLLOUTS_TICK_SECONDS``, ``flags.rollouts_prune`` every hour).

Both expire after one period: a message that waited longer for a worker (workers down, a
queue backed up) is dropped rather than run late, since the next one beat sends does the
same work with today's figures; without it, workers coming back would run the whole backlog
of ticks (or of prunes) at once. Both acknowledge late, as every task here does
(``CELERY_TASK_ACKS_LATE``, restated as ``ops.alert_deliver`` and ``runs.process_batch``
do): a worker lost in the middle of one hands it back, and the controller is idempotent (a
tick slot is decided once), so running it again is safe; a message handed back after its
expiry is dropped like any other late one.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

PRUNE_SECONDS = 3600.0  # as scheduled in settings.CELERY_BEAT_SCHEDULE


def tick_expires_seconds() -> float:
    """How long a queued tick may wait for a worker: one tick period (at least a second)."""
    return max(float(getattr(settings, "ROLLOUTS_TICK_SECONDS", 30.0)), 1.0)


@shared_task(
    name="flags.rollouts_tick", time_limit=120, soft_time_limit=100, acks_late=True, expires=tick_expires_seconds()
)
def rollouts_tick_task() -> list[dict[str, str]]:
    from flags.rollouts.controller import rollouts_tick

    return [{"rollout": r.rollout, "decision": r.decision, "reason": r.reason} for r in rollouts_tick()]


@shared_task(name="flags.rollouts_prune", time_limit=600, soft_time_limit=580, acks_late=True, expires=PRUNE_SECONDS)
def rollouts_prune_task() -> dict[str, int]:
    from flags.rollouts.services import rollouts_prune

    return rollouts_prune()
