"""Worker start-up for runs: load the investor corpus before the first run needs it."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_process_init, worker_ready

logger = logging.getLogger(__name__)


def _warm() -> None:
    from django.db import connection

    from runs.engine import corpus_cache

    try:
        corpus_cache.get()
    except Exception:
        logger.warning("could not preload the investor corpus; the first run will load it", exc_info=True)
    finally:
        connection.close()


@worker_process_init.connect
def _on_worker_process_init(**kwargs: object) -> None:
    # In a background thread: a prefork child must finish starting without waiting on it,
    # and the cache's lock makes a run that arrives meanwhile wait for this load.
    threading.Thread(target=_warm, name="runs-corpus-warm", daemon=True).start()


@worker_ready.connect
def _on_worker_ready(sender: object = None, **kwargs: object) -> None:
    # The solo and threads pools run tasks in the main process. The threads pool sends no
    # process init; Celery 5.7's solo pool does, so there this finds the corpus already warm
    # (one version read).
    from ops.signals import worker_runs_tasks_in_main_process

    if worker_runs_tasks_in_main_process(sender):
        threading.Thread(target=_warm, name="runs-corpus-warm", daemon=True).start()
