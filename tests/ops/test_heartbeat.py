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
