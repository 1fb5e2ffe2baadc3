"""The controller's beat task (every 30 s: settings.CELERY_BEAT_SCHEDULE["flags.rollouts_tick"])."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="flags.rollouts_tick", time_limit=120, soft_time_limit=100)
def rollouts_tick_task() -> list[dict[str, str]]:
    from flags.rollouts.controller import rollouts_tick

    return [{"rollout": r.rollout, "decision": r.decision, "reason": r.reason} for r in rollouts_tick()]


@shared_task(name="flags.rollouts_prune", time_limit=600, soft_time_limit=580)
def rollouts_prune_task() -> dict[str, int]:
    from flags.rollouts.services import rollouts_prune

    return rollouts_prune()
