from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="runs.process_batch", acks_late=True, time_limit=120, soft_time_limit=100)
def process_batch() -> int:
    """Claim and process one batch; if the batch was full there is more, so ask again."""
    from runs.services import match_runs_process_batch

    claimed = match_runs_process_batch()
    if claimed >= settings.RUNS_CLAIM_BATCH:
        process_batch.delay()
    return claimed


@shared_task(name="runs.drain", time_limit=60, soft_time_limit=50)
def drain() -> int:
    """Beat's safety net: wake a worker for every batch's worth of available runs, in
    case a wake-up message was lost."""
    from runs.selectors import match_runs_available_count

    available = match_runs_available_count()
    batches = min(-(-available // settings.RUNS_CLAIM_BATCH), 16)
    for _ in range(batches):
        process_batch.delay()
    return available


@shared_task(name="runs.archive", time_limit=3600, soft_time_limit=3500)
def archive() -> int:
    from runs.services import match_runs_archive

    return match_runs_archive()
