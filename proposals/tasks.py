from __future__ import annotations

from celery import shared_task


@shared_task(name="proposals.tick", time_limit=120, soft_time_limit=100)
def tick() -> dict[str, int]:
    """The loop's heartbeat: finalize what is due, expire matches, refill, open proposals."""
    from proposals.services import matches_expire, proposal_queue_refill, proposals_finalize_due, proposals_open

    return {
        "finalized": proposals_finalize_due(),
        "matches_expired": matches_expire(),
        "queued": proposal_queue_refill(),
        "opened": proposals_open(),
    }


@shared_task(name="proposals.prune", time_limit=300, soft_time_limit=280)
def prune() -> int:
    from proposals.services import wallet_nonces_prune

    return wallet_nonces_prune()


@shared_task(name="proposals.metrics", time_limit=60, soft_time_limit=50)
def metrics() -> int:
    from proposals.services import metrics_record

    return metrics_record().pk
