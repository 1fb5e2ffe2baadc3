"""The calls through which a domain app writes ops' queue tables: enqueue with its history,
and archive of a queue's rows."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.transaction import TransactionManagementError

from ops.models import DeadLetter, QueueHistory
from ops.queue import LeaseQueue
from ops.services import queue_item_enqueue, queue_items_archive
from runs.models import MatchRun, MatchRunStatus
from runs.queue import runs_queue
from tests.factories import MatchRunFactory

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def history(item_id: int) -> list[tuple[str, str, str]]:
    return list(
        QueueHistory.objects.filter(queue=runs_queue.label, item_id=item_id)
        .order_by("id")
        .values_list("event", "from_status", "to_status")
    )


def dead_run() -> MatchRun:
    """A run that went submit -> claim -> dead, with its history and dead letter."""
    with transaction.atomic():
        run = MatchRunFactory()
        queue_item_enqueue(queue=runs_queue, item_id=run.pk)
    (lease,) = runs_queue.claim(owner="w-1", limit=1, ttl=30)
    assert lease.id == run.pk
    runs_queue.fail(lease=lease, error="boom", retryable=False)
    return run


# -- queue_item_enqueue ---------------------------------------------------------------
def test_enqueue_records_the_entry_as_the_first_history_row_of_the_item():
    with transaction.atomic():
        run = MatchRunFactory()
        queue_item_enqueue(queue=runs_queue, item_id=run.pk, event="submit")

    assert history(run.pk) == [("submit", "", MatchRunStatus.QUEUED)]
    entry = QueueHistory.objects.get(queue=runs_queue.label, item_id=run.pk)
    assert (entry.attempt, entry.lease_owner, entry.lease_token, entry.error) == (0, "", None, "")


def test_enqueue_names_the_event_the_caller_gives():
    with transaction.atomic():
        run = MatchRunFactory()
        queue_item_enqueue(queue=runs_queue, item_id=run.pk, event="import")

    assert history(run.pk) == [("import", "", MatchRunStatus.QUEUED)]


def test_enqueue_rolls_back_with_the_row_it_describes():
    with pytest.raises(Rollback), transaction.atomic():
        run = MatchRunFactory()
        queue_item_enqueue(queue=runs_queue, item_id=run.pk)
        raise Rollback

    assert not MatchRun.objects.filter(pk=run.pk).exists()
    assert history(run.pk) == []


def test_enqueue_wakes_a_worker_only_when_the_transaction_commits(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    from runs import tasks

    settings.OPS_WAKE_WORKERS = True
    sent: list[str] = []
    monkeypatch.setattr(tasks.process_batch, "delay", lambda: sent.append("wake"))

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        run = MatchRunFactory()
        queue_item_enqueue(queue=runs_queue, item_id=run.pk)
        assert sent == []  # not before the commit
    assert len(callbacks) == 1
    assert sent == ["wake"]

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        queue_item_enqueue(queue=runs_queue, item_id=MatchRunFactory().pk)
        raise Rollback
    assert callbacks == []
    assert sent == ["wake"]  # a rolled-back enqueue wakes no one


def test_enqueue_on_a_queue_without_a_wake_only_records_history():
    quiet = LeaseQueue(model=MatchRun, wake=None)
    with transaction.atomic():
        run = MatchRunFactory()
        queue_item_enqueue(queue=quiet, item_id=run.pk)
    assert history(run.pk) == [("submit", "", MatchRunStatus.QUEUED)]


@pytest.mark.django_db(transaction=True)
def test_enqueue_outside_a_transaction_is_refused():
    run = MatchRunFactory()
    with pytest.raises(TransactionManagementError):
        queue_item_enqueue(queue=runs_queue, item_id=run.pk)
    assert history(run.pk) == []


# -- queue_items_archive --------------------------------------------------------------
def test_archive_hands_over_the_history_and_dead_letters_of_the_given_items_and_deletes_them():
    gone = dead_run()
    letter = DeadLetter.objects.get(queue=runs_queue.label, item_id=gone.pk)

    with transaction.atomic():
        taken = queue_items_archive(queue=runs_queue, item_ids=[gone.pk])

    assert [h["event"] for h in taken.history[gone.pk]] == ["submit", "claim", "dead"]
    claim = taken.history[gone.pk][1]
    assert claim["from_status"] == MatchRunStatus.QUEUED
    assert claim["to_status"] == MatchRunStatus.PROCESSING
    assert claim["lease_owner"] == "w-1"
    assert claim["attempt"] == 1
    assert taken.history[gone.pk][2]["error"] == "boom"
    assert all(isinstance(h["created_at"], str) for h in taken.history[gone.pk])
    assert taken.dead_letters == {
        gone.pk: [
            {
                "id": letter.pk,
                "reason": "permanent",
                "attempts": 1,
                "rescues": 0,
                "last_error": "boom",
                "errors": ["boom"],
                "created_at": letter.created_at.isoformat(),
                "requeued_at": None,
            }
        ]
    }
    assert history(gone.pk) == []
    assert not DeadLetter.objects.filter(pk=letter.pk).exists()


def test_archive_leaves_other_items_and_other_queues_alone():
    gone = dead_run()
    kept = dead_run()
    QueueHistory.objects.create(queue="other.queue", item_id=gone.pk, to_status="queued", event="submit")
    DeadLetter.objects.create(queue="other.queue", item_id=gone.pk, reason="attempts")

    with transaction.atomic():
        taken = queue_items_archive(queue=runs_queue, item_ids=[gone.pk])

    assert set(taken.history) == set(taken.dead_letters) == {gone.pk}
    assert [event for event, _, _ in history(kept.pk)] == ["submit", "claim", "dead"]
    assert DeadLetter.objects.filter(queue=runs_queue.label, item_id=kept.pk).count() == 1
    assert QueueHistory.objects.filter(queue="other.queue", item_id=gone.pk).count() == 1
    assert DeadLetter.objects.filter(queue="other.queue", item_id=gone.pk).count() == 1


def test_archive_of_items_with_nothing_recorded_gives_empty_maps():
    run = MatchRunFactory()
    with transaction.atomic():
        taken = queue_items_archive(queue=runs_queue, item_ids=[run.pk])
    assert (taken.history, taken.dead_letters) == ({}, {})


def test_archive_deletes_nothing_when_the_callers_transaction_rolls_back():
    gone = dead_run()
    with pytest.raises(Rollback), transaction.atomic():
        queue_items_archive(queue=runs_queue, item_ids=[gone.pk])
        raise Rollback  # the caller failed to write its archive

    assert [event for event, _, _ in history(gone.pk)] == ["submit", "claim", "dead"]
    assert DeadLetter.objects.filter(queue=runs_queue.label, item_id=gone.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_archive_outside_a_transaction_is_refused():
    gone = dead_run()
    with pytest.raises(TransactionManagementError):
        queue_items_archive(queue=runs_queue, item_ids=[gone.pk])
    assert len(history(gone.pk)) == 3
