"""The discovery lease queue: DiscoveryJob rows, done as ``done``, dead as ``dead``."""

from __future__ import annotations

from discovery.models import DiscoveryJob
from ops.models import QueueStatus
from ops.queue import LeaseQueue, queue_register
from ops.services import task_wake


def _wake() -> None:
    from discovery.tasks import process_batch

    task_wake(send=process_batch.delay)


discovery_queue = queue_register(
    LeaseQueue(
        model=DiscoveryJob,
        done_status=QueueStatus.DONE,
        dead_status=QueueStatus.DEAD,
        max_rescues=3,
        wake=_wake,
        finished_field="finished_at",
    )
)
