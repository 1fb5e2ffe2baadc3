from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now

from ops.models import WorkerHeartbeat
from ops.selectors import workers_live, workers_stale
from ops.services import heartbeat_beat
from ops.worker import worker_counters, worker_id

pytestmark = pytest.mark.django_db


def test_a_heartbeat_records_the_worker_its_queues_and_counters():
    worker_counters().add(processed=3, failed=1)
    heartbeat_beat(queues=["celery"])
    heartbeat_beat(queues=["celery"])  # updates, never duplicates

    beat = WorkerHeartbeat.objects.get()
    assert beat.worker_id == worker_id()
    assert beat.queues == ["celery"]
    assert beat.processed >= 3 and beat.failed >= 1
    assert list(workers_live()) == [beat]
    assert not workers_stale().exists()


def test_a_worker_silent_for_longer_than_the_limit_is_stale(settings):
    settings.OPS_WORKER_STALE_SECONDS = 60
    heartbeat_beat(queues=["celery"])
    WorkerHeartbeat.objects.update(last_seen=Now() - timedelta(seconds=61))
    assert list(workers_stale().values_list("worker_id", flat=True)) == [worker_id()]
    assert not workers_live().exists()


def test_worker_ids_differ_per_process():
    import subprocess
    import sys

    code = "from ops.worker import worker_id; print(worker_id())"
    others = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(2)}
    assert len(others) == 2
    assert worker_id() not in others


def test_a_solo_pool_being_built_does_not_start_beating_before_the_worker_can_shut_down_cleanly():
    # Celery's solo pool sends worker_process_init from the main process while the worker is
    # still being built, before its SIGTERM handler exists; a beat started there was left
    # behind when a SIGTERM came in that window (the process died without cleaning up).
    import os

    from celery.concurrency.solo import TaskPool

    from ops import signals

    assert signals.in_main_process()
    signals._started.pop(os.getpid(), None)
    try:
        TaskPool()
        assert os.getpid() not in signals._started
    finally:
        signals.heartbeat_stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_real_worker_beats_from_start_up_and_removes_its_row_on_a_clean_shutdown(pool, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.support.servers import child_database_url

    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "CELERY_BROKER_URL": "filesystem://localhost//",
        "MATCHPLATFORM_VAR_DIR": str(tmp_path),
        "OPS_HEARTBEAT_SECONDS": "0.5",
    }
    celery = str(Path(sys.executable).parent / "celery")
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [celery, "-A", "matchplatform", "worker", f"--pool={pool}", "-c", "1", "--without-gossip", "--without-mingle"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not WorkerHeartbeat.objects.exists():
            assert time.monotonic() < deadline, "no heartbeat from an idle worker"
            assert proc.poll() is None, "the worker exited"
            time.sleep(0.2)
        beat = WorkerHeartbeat.objects.get()
        assert beat.worker_id.startswith("w-")
        assert beat.queues == ["celery"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
        left = list(WorkerHeartbeat.objects.values("worker_id", "pid", "last_seen"))
        assert not left, (left, proc.pid, (tmp_path / "worker.log").read_text()[-4000:])
    finally:
        log.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
