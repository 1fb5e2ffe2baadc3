"""The lease queue against real PostgreSQL: claims, fencing, retries, dead letters, rescues."""

from __future__ import annotations

import os
import random
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.db.models.functions import Now
from django.test import override_settings
from django.utils import timezone

from matchplatform.exceptions import LeaseLost
from ops.models import DeadLetter, QueueHistory
from ops.queue import Lease, backoff_seconds
from ops.services import dead_letters_requeue
from ops.worker import worker_counters
from runs.models import MatchRun, MatchRunStatus
from runs.queue import runs_queue
from tests.factories import MatchRunFactory
from tests.support.barrier import run_together
from tests.support.servers import child_database_url

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def events(item_id: int) -> list[str]:
    return list(
        QueueHistory.objects.filter(queue=runs_queue.label, item_id=item_id)
        .order_by("id")
        .values_list("event", flat=True)
    )


def expire(*ids: int) -> None:
    MatchRun.objects.filter(pk__in=ids).update(lease_expires_at=Now() - timedelta(seconds=1))


def test_claim_hands_out_a_batch_in_priority_order_with_fresh_tokens():
    low = MatchRunFactory(priority=200)
    first = MatchRunFactory(priority=10)
    second = MatchRunFactory(priority=100)

    leases = runs_queue.claim(owner="w-1", limit=2, ttl=30)

    assert [lease.id for lease in leases] == [first.pk, second.pk]
    assert len({lease.token for lease in leases}) == 2
    for lease in leases:
        run = MatchRun.objects.get(pk=lease.id)
        assert run.status == MatchRunStatus.PROCESSING
        assert run.lease_owner == "w-1"
        assert run.lease_token == lease.token
        assert run.attempts == lease.attempt == 1
        assert timedelta(seconds=25) < run.lease_expires_at - timezone.now() < timedelta(seconds=35)
        assert events(lease.id) == ["claim"]
    assert MatchRun.objects.get(pk=low.pk).status == MatchRunStatus.QUEUED


def test_claim_skips_rows_whose_backoff_has_not_elapsed():
    waiting = MatchRunFactory()
    MatchRun.objects.filter(pk=waiting.pk).update(available_at=Now() + timedelta(minutes=5))
    ready = MatchRunFactory()

    assert [lease.id for lease in runs_queue.claim(owner="w", limit=10, ttl=30)] == [ready.pk]


def test_concurrent_claimers_never_get_the_same_row():
    MatchRun.objects.bulk_create(
        [MatchRun(canonical_url=f"https://c{i}.example", submitted_url="x", max_attempts=3) for i in range(300)]
    )
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            barrier.wait()
            mine: list[int] = []
            while batch := runs_queue.claim(owner=f"w-{n}", limit=7, ttl=30):
                mine += [lease.id for lease in batch]
            with lock:
                claimed.append(mine)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    every = [item for mine in claimed for item in mine]
    assert len(every) == 300
    assert len(set(every)) == 300
    assert sum(1 for mine in claimed if mine) >= 2  # the claimers really interleaved


def test_ack_with_the_current_token_finishes_the_row_and_runs_the_result_writer():
    run = MatchRunFactory()
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
    wrote: list[bool] = []

    runs_queue.ack(lease=lease, fields={"match_count": 7}, on_ack=lambda: wrote.append(True))

    run.refresh_from_db()
    assert run.status == MatchRunStatus.READY
    assert run.match_count == 7
    assert run.finished_at is not None
    assert wrote == [True]
    assert events(run.pk) == ["claim", "ack"]


def test_a_late_ack_with_an_old_token_is_refused_counted_and_writes_nothing():
    run = MatchRunFactory()
    (old,) = runs_queue.claim(owner="w-old", limit=1, ttl=30)
    expire(run.pk)
    runs_queue.release_expired()
    (new,) = runs_queue.claim(owner="w-new", limit=1, ttl=30)
    assert new.token != old.token
    lost_before = worker_counters().snapshot()[2]
    wrote: list[bool] = []

    with pytest.raises(LeaseLost):
        runs_queue.ack(lease=old, on_ack=lambda: wrote.append(True))

    assert wrote == []
    assert worker_counters().snapshot()[2] == lost_before + 1
    run.refresh_from_db()
    assert run.status == MatchRunStatus.PROCESSING
    assert run.lease_owner == "w-new"
    assert events(run.pk)[-1] == "lease_lost"
    runs_queue.ack(lease=new)  # the real owner still can
    assert MatchRun.objects.get(pk=run.pk).status == MatchRunStatus.READY


def test_a_failing_result_writer_rolls_the_ack_back():
    run = MatchRunFactory()
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)

    def broken() -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        runs_queue.ack(lease=lease, on_ack=broken)

    run.refresh_from_db()
    assert run.status == MatchRunStatus.PROCESSING
    assert events(run.pk) == ["claim"]


def test_extend_pushes_the_lease_out_only_for_its_holder():
    run = MatchRunFactory()
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=5)
    runs_queue.extend(lease=lease, ttl=600)
    run.refresh_from_db()
    assert run.lease_expires_at - timezone.now() > timedelta(seconds=500)

    with pytest.raises(LeaseLost):
        runs_queue.extend(lease=Lease(id=run.pk, token=uuid.uuid4(), attempt=1), ttl=600)


@override_settings(OPS_BACKOFF_BASE_SECONDS=10, OPS_BACKOFF_MAX_SECONDS=1000)
def test_fail_requeues_with_a_backoff_no_longer_than_the_exponential_ceiling():
    run = MatchRunFactory(max_attempts=5)
    ceilings = []
    for attempt in range(1, 4):
        MatchRun.objects.filter(pk=run.pk).update(available_at=Now())
        (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
        before = timezone.now()
        assert runs_queue.fail(lease=lease, error=f"boom {attempt}") == MatchRunStatus.QUEUED
        run.refresh_from_db()
        delay = (run.available_at - before).total_seconds()
        ceilings.append(10 * 2 ** (attempt - 1))
        assert -1 <= delay <= ceilings[-1] + 1
        assert run.last_error == f"boom {attempt}"
        assert run.lease_expires_at is None
    assert events(run.pk) == ["claim", "retry"] * 3


def test_backoff_is_full_jitter_under_a_capped_exponential():
    rng = random.Random(1)
    for errors, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        samples = [backoff_seconds(errors=errors, base=2.0, cap=60.0, rng=rng) for _ in range(2000)]
        assert min(samples) >= 0.0
        assert max(samples) <= ceiling
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(samples) < ceiling * 0.05
        assert max(samples) > ceiling * 0.95


def test_a_row_that_keeps_failing_ends_dead_with_all_its_errors_kept():
    run = MatchRunFactory(max_attempts=3)
    for attempt in range(1, 4):
        MatchRun.objects.filter(pk=run.pk).update(available_at=Now())
        (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
        status = runs_queue.fail(lease=lease, error=f"error {attempt}")
    assert status == MatchRunStatus.ERROR
    run.refresh_from_db()
    assert run.status == MatchRunStatus.ERROR
    assert run.finished_at is not None
    letter = DeadLetter.objects.get(queue=runs_queue.label, item_id=run.pk)
    assert letter.reason == "attempts"
    assert letter.errors == ["error 1", "error 2", "error 3"]
    assert runs_queue.claim(owner="w", limit=1, ttl=30) == []


def test_a_permanent_error_goes_dead_at_once():
    run = MatchRunFactory(max_attempts=5)
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
    assert runs_queue.fail(lease=lease, error="404", retryable=False) == MatchRunStatus.ERROR
    assert DeadLetter.objects.get(item_id=run.pk).reason == "permanent"


def test_release_expired_requeues_expired_leases_and_leaves_live_ones():
    dead_worker, live_worker = MatchRunFactory(), MatchRunFactory()
    leases = runs_queue.claim(owner="w", limit=2, ttl=30)
    expire(dead_worker.pk)

    result = runs_queue.release_expired()

    assert result.requeued == [dead_worker.pk]
    assert result.dead == []
    dead_worker.refresh_from_db()
    assert dead_worker.status == MatchRunStatus.QUEUED
    assert dead_worker.rescues == 1
    assert dead_worker.lease_expires_at is None
    assert MatchRun.objects.get(pk=live_worker.pk).status == MatchRunStatus.PROCESSING
    assert events(dead_worker.pk) == ["claim", "rescue"]
    assert runs_queue.release_expired().requeued == []  # idempotent
    assert len(leases) == 2


def test_rescues_are_counted_apart_from_error_attempts():
    run = MatchRunFactory(max_attempts=2)
    for _ in range(2):  # two crashes
        runs_queue.claim(owner="w", limit=1, ttl=30)
        expire(run.pk)
        runs_queue.release_expired()
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
    # third claim, but only the first error: it is retried, not dead
    assert runs_queue.fail(lease=lease, error="first error") == MatchRunStatus.QUEUED
    run.refresh_from_db()
    assert (run.attempts, run.rescues) == (3, 2)


@override_settings(RUNS_MAX_RESCUES=2)
def test_a_row_rescued_too_often_is_dead_as_a_poison_pill():
    run = MatchRunFactory()
    outcomes = []
    for _ in range(3):
        MatchRun.objects.filter(pk=run.pk).update(available_at=Now())
        assert runs_queue.claim(owner="w", limit=1, ttl=30)
        expire(run.pk)
        outcomes.append(runs_queue.release_expired())
    assert [bool(o.requeued) for o in outcomes] == [True, True, False]
    assert outcomes[-1].dead == [run.pk]
    run.refresh_from_db()
    assert run.status == MatchRunStatus.ERROR
    assert DeadLetter.objects.get(item_id=run.pk).reason == "rescues"


def test_requeueing_a_dead_letter_gives_the_row_a_fresh_start():
    run = MatchRunFactory(max_attempts=1)
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
    runs_queue.fail(lease=lease, error="boom")
    letter = DeadLetter.objects.get(item_id=run.pk)

    assert dead_letters_requeue(dead_letter_ids=[letter.pk]) == 1
    assert dead_letters_requeue(dead_letter_ids=[letter.pk]) == 0  # not twice

    run.refresh_from_db()
    assert (run.status, run.attempts, run.rescues) == (MatchRunStatus.QUEUED, 0, 0)
    letter.refresh_from_db()
    assert letter.requeued_at is not None
    assert events(run.pk)[-1] == "requeue"
    assert [lease.id for lease in runs_queue.claim(owner="w", limit=1, ttl=30)] == [run.pk]


RELEASE_SCRIPT = """
import os, sys, time, json
import django
django.setup()
from runs.queue import runs_queue
start_line(sys.argv[1], sys.argv[2])
requeued = []
while True:
    result = runs_queue.release_expired(limit=50)
    if not result.requeued and not result.dead:
        break
    requeued += result.requeued
print(json.dumps(requeued))
"""


def test_release_expired_run_by_two_processes_at_once_rescues_each_row_exactly_once(tmp_path):
    MatchRun.objects.bulk_create(
        [MatchRun(canonical_url=f"https://r{i}.example", submitted_url="x", max_attempts=3) for i in range(600)]
    )
    claimed = []
    while batch := runs_queue.claim(owner="crashed", limit=200, ttl=30):
        claimed += batch
    MatchRun.objects.update(lease_expires_at=Now() - timedelta(seconds=5))
    env = {**os.environ, "DATABASE_URL": child_database_url(), "DJANGO_SETTINGS_MODULE": "matchplatform.settings"}
    per_process = run_together(script=RELEASE_SCRIPT, count=2, env=env, folder=tmp_path, cwd=REPO)
    together = per_process[0] + per_process[1]
    assert sorted(together) == sorted(lease.id for lease in claimed)  # every row, once
    assert all(per_process), "both processes should have rescued some rows"
    assert set(MatchRun.objects.values_list("rescues", flat=True)) == {1}
    assert set(MatchRun.objects.values_list("status", flat=True)) == {MatchRunStatus.QUEUED}
    assert QueueHistory.objects.filter(event="rescue").count() == 600


def test_ack_many_sets_per_row_fields_writes_results_only_for_held_leases_and_records_lost_ones():
    kept, stolen = MatchRunFactory(), MatchRunFactory()
    leases = runs_queue.claim(owner="w", limit=2, ttl=30)
    expire(stolen.pk)
    runs_queue.release_expired()
    runs_queue.claim(owner="thief", limit=1, ttl=30)
    written: list[list[int]] = []

    acked = runs_queue.ack_many(
        leases=leases,
        fields={lease.id: {"match_count": lease.id} for lease in leases},
        on_ack=lambda held: written.append([lease.id for lease in held]),
    )

    assert acked == [kept.pk]
    assert written == [[kept.pk]]
    assert MatchRun.objects.get(pk=kept.pk).match_count == kept.pk
    stolen.refresh_from_db()
    assert (stolen.status, stolen.lease_owner, stolen.match_count) == (MatchRunStatus.PROCESSING, "thief", 0)
    assert events(stolen.pk)[-1] == "lease_lost"


def test_every_recorded_transition_is_one_the_state_machine_allows(settings):
    settings.RUNS_MAX_RESCUES = 1
    settings.OPS_BACKOFF_BASE_SECONDS = 0
    a, b, c = MatchRunFactory(max_attempts=2), MatchRunFactory(max_attempts=1), MatchRunFactory()
    for lease in runs_queue.claim(owner="w", limit=3, ttl=30):
        if lease.id == a.pk:
            runs_queue.fail(lease=lease, error="x")  # retry
        elif lease.id == b.pk:
            runs_queue.fail(lease=lease, error="y")  # dead
        else:
            expire(c.pk)
    runs_queue.release_expired()  # rescue c
    for lease in runs_queue.claim(owner="w", limit=3, ttl=30):
        runs_queue.ack(lease=lease)
    dead = DeadLetter.objects.get(item_id=b.pk)
    dead_letters_requeue(dead_letter_ids=[dead.pk])

    rows = QueueHistory.objects.filter(queue=runs_queue.label).values_list("event", "from_status", "to_status")
    seen = set()
    for event, from_status, to_status in rows:
        assert runs_queue.transition_allowed(from_status=from_status, event=event), (event, from_status)
        assert to_status == runs_queue.status_for(event), (event, to_status)
        seen.add(event)
    assert seen == {"claim", "retry", "dead", "rescue", "ack", "requeue"}


@override_settings(RUNS_MAX_RESCUES=0)
def test_a_poison_pill_says_why_it_stopped():
    run = MatchRunFactory()
    runs_queue.claim(owner="w", limit=1, ttl=30)
    expire(run.pk)
    assert runs_queue.release_expired().dead == [run.pk]
    run.refresh_from_db()
    assert run.last_error == "gave up: the worker's lease expired 1 times (it crashed or stalled each time)"
    assert run.finished_at is not None and run.duration_ms is not None


def test_requeueing_skips_a_run_whose_url_has_a_newer_active_run_and_keeps_the_rest():
    blocked = MatchRunFactory(canonical_url="https://again.example", max_attempts=1)
    free = MatchRunFactory(max_attempts=1)
    for lease in runs_queue.claim(owner="w", limit=2, ttl=30):
        runs_queue.fail(lease=lease, error="boom")
    MatchRunFactory(canonical_url="https://again.example")  # the user submitted again

    letters = list(DeadLetter.objects.order_by("id").values_list("pk", flat=True))
    assert dead_letters_requeue(dead_letter_ids=letters) == 1

    assert MatchRun.objects.get(pk=free.pk).status == MatchRunStatus.QUEUED
    assert MatchRun.objects.get(pk=blocked.pk).status == MatchRunStatus.ERROR
    assert DeadLetter.objects.get(item_id=blocked.pk).requeued_at is None
