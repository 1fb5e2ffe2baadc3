"""Worker hooks: every process that runs tasks sends heartbeats from a daemon thread from
the moment it starts, and removes its row when it shuts down cleanly (a row that stops
moving without being removed is a worker that died).

Beat's hook: as beat starts it runs ``OPS_BEAT_STARTUP_TASKS`` once, so a fresh platform
has its first refill and its first invariant results at once, not a period later."""

from __future__ import annotations

import logging
import os
import threading

from celery.signals import (
    beat_init,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)
_started: dict[int, tuple[threading.Thread, threading.Event]] = {}


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
    pid = os.getpid()
    running = _started.get(pid)
    if running is not None and running[0].is_alive():
        return
    stop = threading.Event()
    thread = threading.Thread(target=_heartbeat_loop, args=(queues, stop), name="ops-heartbeat", daemon=True)
    _started[pid] = (thread, stop)
    thread.start()


def heartbeat_stop() -> None:
    from ops.services import heartbeat_remove

    running = _started.pop(os.getpid(), None)
    if running is None:
        return
    running[1].set()
    # Wait for a beat in flight, or it could write the row again after the delete below.
    running[0].join(timeout=30)
    try:
        heartbeat_remove()
    except Exception:
        logger.warning("could not remove this worker's heartbeat", exc_info=True)
    finally:
        connection.close()


def _queues(app: object) -> list[str]:
    amqp = getattr(app, "amqp", None)
    return sorted(getattr(amqp, "queues", {}).keys()) or ["celery"]


def worker_runs_tasks_in_main_process(sender: object) -> bool:
    return not type(getattr(sender, "pool", None)).__module__.endswith(".prefork")


def in_main_process() -> bool:
    from billiard.process import current_process

    return bool(current_process().name == "MainProcess")


@worker_process_init.connect
def _on_process_init(**kwargs: object) -> None:
    # The solo pool sends this from the main process while the worker is still being built,
    # before Celery installs its SIGTERM handler: a SIGTERM then kills the process outright
    # and its row would stay behind, looking like a dead worker. The main process starts
    # beating at worker_ready instead, once a SIGTERM means a clean shutdown.
    if in_main_process():
        return
    from matchplatform.celery import app

    heartbeat_start(queues=_queues(app))


@worker_process_shutdown.connect
def _on_process_shutdown(**kwargs: object) -> None:
    heartbeat_stop()


@worker_ready.connect
def _on_worker_ready(sender: object = None, **kwargs: object) -> None:
    # The solo and threads pools run tasks in the main process, which beats from here (the
    # threads pool sends no process init; the solo pool's is ignored, above).
    if worker_runs_tasks_in_main_process(sender):
        heartbeat_start(queues=_queues(getattr(sender, "app", None)))


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs: object) -> None:
    heartbeat_stop()


@task_prerun.connect
def _on_task_prerun(sender: object = None, task: object = None, **kwargs: object) -> None:
    # A safety net for a process that runs tasks without the start-up signals (eager mode).
    if task is not None:
        heartbeat_start(queues=_queues(getattr(task, "app", None)))


def beat_startup_tasks_run(*, app: object) -> dict[str, object]:
    """Run each of ``OPS_BEAT_STARTUP_TASKS`` here and now, in order; returns each one's result
    (or its error). A task that fails is logged and the others still run."""
    loader = getattr(app, "loader", None)
    if loader is not None:
        # Beat has imported the task modules by now; anywhere else (a test, a shell) this
        # imports them, so that every name below is registered.
        loader.import_default_modules()
    tasks = getattr(app, "tasks", {})
    results: dict[str, object] = {}
    for name in settings.OPS_BEAT_STARTUP_TASKS:
        task = tasks.get(name)
        if task is None:
            logger.warning("beat start-up task %s is not registered; skipped", name)
            continue
        try:
            # Called, not sent: the results are in before beat's first tick, whether or not a
            # worker is up yet, and no task_prerun fires (beat is not a worker).
            results[name] = task()
        except Exception as exc:
            logger.warning("beat start-up task %s failed", name, exc_info=True)
            results[name] = exc
    return results


@beat_init.connect
def _on_beat_init(sender: object = None, **kwargs: object) -> None:
    from celery import current_app

    results = beat_startup_tasks_run(app=getattr(sender, "app", None) or current_app)
    logger.info("beat start-up tasks ran: %s", ", ".join(results) or "none")
