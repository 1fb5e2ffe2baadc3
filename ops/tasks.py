from __future__ import annotations

from celery import shared_task

from ops.queue import queues_all


@shared_task(name="ops.release_expired", time_limit=60, soft_time_limit=50)
def release_expired() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for queue in queues_all():
        result = queue.release_expired()
        out[queue.label] = {"requeued": len(result.requeued), "dead": len(result.dead)}
        if result.requeued and queue.wake is not None:
            queue.wake()
    return out


@shared_task(name="ops.invariants_check", time_limit=120, soft_time_limit=100)
def invariants_check() -> dict[str, str]:
    from ops.services import invariants_check_and_store

    return {o.name: o.state for o in invariants_check_and_store()}


@shared_task(name="ops.prune", time_limit=300, soft_time_limit=280)
def prune() -> dict[str, int]:
    from ops.services import ops_prune

    return ops_prune()
