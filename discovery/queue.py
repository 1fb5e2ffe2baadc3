"""Discovery's two lease queues: discovery jobs (DiscoveryJob rows, one member and interest
each) and events (DiscoveryEvent rows: something that happened, with a topic). Both are
ops lease queues: claims in batches, fencing tokens, retries with backoff, dead letters,
history and rescue come from ops.queue; done is ``done``, dead is ``dead``."""

from __future__ import annotations

from discovery.models import DiscoveryEvent, DiscoveryJob
from ops.models import QueueStatus
from ops.queue import LeaseQueue, queue_register
from ops.services import task_wake


def _wake() -> None:
    from discovery.tasks import process_batch

    task_wake(send=process_batch.delay)


def _wake_events() -> None:
    from discovery.tasks import events_process

    task_wake(send=events_process.delay)


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

events_queue = queue_register(
    LeaseQueue(
        model=DiscoveryEvent,
        done_status=QueueStatus.DONE,
        dead_status=QueueStatus.DEAD,
        max_rescues=3,
        wake=_wake_events,
        finished_field="finished_at",
    )
)

# The queues by the short names the staff API and the health selectors use.
QUEUES_BY_NAME = {"discovery": discovery_queue, "events": events_queue}
