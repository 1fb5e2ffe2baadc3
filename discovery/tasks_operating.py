"""Beat's operating tasks for discovery: the SLO guard (every minute) and the retention GC
(daily). Thin: they call the service and answer JSON."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="discovery.slo_guard", time_limit=60, soft_time_limit=50)
def slo_guard() -> dict[str, object]:
    """Turn safe mode on when an SLO burns at the limit (once; never off)."""
    from discovery.guard import slo_guard_run

    outcome = slo_guard_run()
    return {"action": outcome.action, "slo": outcome.slo, "burn_rate": outcome.burn_rate, "sample": outcome.sample}


@shared_task(name="discovery.gc", time_limit=1800, soft_time_limit=1700)
def gc() -> dict[str, object]:
    """Delete the learning events and intent signals past their retention, in batches."""
    from discovery.gc import retention_gc_run

    # Within the task's time limit: a run that stops at its budget leaves the rest to tomorrow.
    return retention_gc_run(max_seconds=float(settings.DISCOVERY_GC_MAX_SECONDS)).as_dict()
