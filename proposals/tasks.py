from __future__ import annotations

from celery import shared_task


@shared_task(name="proposals.finalize", time_limit=60, soft_time_limit=50)
def finalize() -> int:
    """On its own short period, so a proposal closes well within 10 s of its deadline
    whatever the refill in the tick is doing."""
    from proposals.voting.services import proposals_finalize_due

    return proposals_finalize_due()


@shared_task(name="proposals.tick", time_limit=120, soft_time_limit=100)
def tick() -> dict[str, int]:
    """The loop's upkeep: refill the queue, open proposals from it, and refill it again, so a
    tick leaves both at their marks (on a fresh platform the first refill gives the opening
    something to take; the second tops up what the opening took)."""
    from proposals.voting.services import proposal_queue_refill, proposals_open

    queued = proposal_queue_refill()
    opened = proposals_open()
    return {"queued": queued + proposal_queue_refill(), "opened": opened}


@shared_task(name="proposals.expire_matches", time_limit=120, soft_time_limit=100)
def expire_matches() -> int:
    """Pending matches past their deadline become expired (on their own beat entry, so a
    slow refill never holds expiry back)."""
    from proposals.matches.services import matches_expire

    return matches_expire()


@shared_task(name="proposals.prune", time_limit=300, soft_time_limit=280)
def prune() -> int:
    from proposals.identity.services import wallet_nonces_prune

    return wallet_nonces_prune()


@shared_task(name="proposals.metrics", time_limit=60, soft_time_limit=50)
def metrics() -> int:
    from proposals.voting.services import metrics_record

    return metrics_record().pk
