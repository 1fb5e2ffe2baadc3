from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="discovery.process_batch", acks_late=True, time_limit=120, soft_time_limit=100)
def process_batch() -> int:
    """Claim and process one batch of discovery jobs; a full batch means more: ask again."""
    from discovery.services import discovery_jobs_process_batch

    claimed = discovery_jobs_process_batch()
    if claimed >= settings.DISCOVERY_CLAIM_BATCH:
        process_batch.delay()
    return claimed


@shared_task(name="discovery.events_process", acks_late=True, time_limit=120, soft_time_limit=100)
def events_process() -> dict[str, int]:
    """Claim and handle one batch of discovery events, whatever their topic (beat runs it
    every minute; a published event wakes it on commit); a full batch means more: ask again."""
    from discovery.services import events_process_batch

    work = events_process_batch()
    if work.claimed >= settings.DISCOVERY_EVENTS_CLAIM_BATCH:
        events_process.delay()
    return {"claimed": work.claimed, "processed": work.processed, "errors": work.errors, "dead": work.dead}
