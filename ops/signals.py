"""Worker hooks: each worker process sends heartbeats from a daemon thread."""

from __future__ import annotations

import logging
import threading

from celery.signals import task_prerun
from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)
_started: dict[int, threading.Thread] = {}


def _heartbeat_loop(queues: list[str], stop: threading.Event) -> None:
    from ops.services import heartbeat_beat

    while not stop.is_set():
        try:
            close_old_connections()
            heartbeat_beat(queues=queues)
        except Exception:
            logger.warning("heartbeat failed", exc_info=True)
        finally:
            connection.close()
        stop.wait(settings.OPS_HEARTBEAT_SECONDS)


def heartbeat_start(*, queues: list[str]) -> None:
    import os

    pid = os.getpid()
    if pid in _started and _started[pid].is_alive():
        return
    thread = threading.Thread(
        target=_heartbeat_loop, args=(queues, threading.Event()), name="ops-heartbeat", daemon=True
    )
    _started[pid] = thread
    thread.start()


@task_prerun.connect
def _on_task_prerun(sender=None, task=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
    # Started lazily from the first task, so it runs in whichever process executes tasks
    # (a prefork child, or the main process for the solo and threads pools).
    if task is None:
        return
    queues = sorted(task.app.amqp.queues.keys()) or ["celery"]
    heartbeat_start(queues=queues)
