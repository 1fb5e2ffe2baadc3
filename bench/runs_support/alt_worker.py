"""A worker process for the plain alternatives, started by ``bench.runs``:

    python -m bench.runs_support.alt_worker reload|sql

It claims runs from the same lease queue (``runs_queue.claim``, one at a time so the two
processes share the work evenly) and processes each with the production service
``runs.services.match_run_process`` (same store, same ack, same ``duration_ms``), except:

* ``reload``: the per-process corpus cache is emptied before every run, so each run does
  ``corpus_load()`` from PostgreSQL and then scores with the same engine;
* ``sql``: the engine's ``matches_rank`` is replaced by one SQL query over runs_investor
  (``bench.runs_support.sql_scoring``) and the corpus cache is never touched.

There is no Celery here: an idle process polls ``claim`` every ``--poll-ms`` (5 ms), which
adds at most that much to a run's wait. It prints ``READY`` once Django and its database
connection are up, and runs until it is terminated.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from bench.common.env import django_setup


class _NoCorpus:
    """Stands in for ``runs.engine.corpus_cache`` when scoring happens in SQL."""

    def get(self) -> None:
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["reload", "sql"])
    parser.add_argument("--poll-ms", type=float, default=5.0)
    args = parser.parse_args()

    stopping = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    django_setup()

    from django.conf import settings
    from django.db import connection

    from matchplatform.exceptions import LeaseLost
    from ops.worker import worker_id
    from runs import services
    from runs.engine import corpus_cache
    from runs.queue import runs_queue

    if args.mode == "sql":
        from bench.runs_support.sql_scoring import sql_matches_rank

        services.matches_rank = sql_matches_rank  # type: ignore[assignment]
        services.corpus_cache = _NoCorpus()  # type: ignore[assignment]

    connection.ensure_connection()
    print("READY", flush=True)

    owner = worker_id()
    idle = args.poll_ms / 1000.0
    while not stopping["now"]:
        leases = runs_queue.claim(owner=owner, limit=1, ttl=settings.RUNS_LEASE_TTL_SECONDS)
        if not leases:
            time.sleep(idle)
            continue
        for lease in leases:
            if args.mode == "reload":
                corpus_cache.clear()
            try:
                services.match_run_process(lease=lease)
            except LeaseLost:
                print(f"run #{lease.id}: lease lost", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
