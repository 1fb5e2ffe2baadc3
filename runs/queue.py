"""The runs lease queue: MatchRun rows, done as ``ready``, dead as ``error``."""

from __future__ import annotations

from django.conf import settings

from ops.queue import LeaseQueue, queue_register
from ops.services import task_wake
from runs.models import MatchRun, MatchRunStatus


def _wake() -> None:
    from runs.tasks import process_batch

    task_wake(send=process_batch.delay)


runs_queue = queue_register(
    LeaseQueue(
        model=MatchRun,
        done_status=MatchRunStatus.READY,
        dead_status=MatchRunStatus.ERROR,
        max_rescues=lambda: settings.RUNS_MAX_RESCUES,
        wake=_wake,
        finished_field="finished_at",
        duration_field="duration_ms",
    )
)
