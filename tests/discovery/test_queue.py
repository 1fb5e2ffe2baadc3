"""Members' interests feed the discovery queue (an ops lease queue): a job per new or changed
interest, one in flight per interest; the worker records gaps; failures retry, die and are
requeued by the ops queue's own rules."""

from __future__ import annotations

import pytest
from django.db.models.functions import Now

import discovery.services as services
from discovery.models import Candidate, Category, DiscoveryJob, Gap, Interest, UserInterest
from discovery.services import catalog_seed_day0, discovery_jobs_process_batch, user_interests_set
from matchplatform.exceptions import InvalidInput
from ops.models import DeadLetter, QueueHistory
from ops.services import dead_letters_requeue

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(django_user_model):
    catalog_seed_day0()
    return django_user_model.objects.create_user(username="explorer")  # no password: hashing one costs a second


def jobs(member) -> list[tuple[str, str]]:
    return sorted(DiscoveryJob.objects.filter(user=member).values_list("interest__slug", "status"))


def test_new_or_changed_interests_are_queued_once_each(member):
    user_interests_set(user=member, affinities={"ai": 0.9, "fintech": 0.8, "health": 0.7})
    assert jobs(member) == [("ai", "queued"), ("fintech", "queued"), ("health", "queued")]
    assert QueueHistory.objects.filter(queue="discovery.discoveryjob", event="submit").count() == 3
    assert set(DiscoveryJob.objects.values_list("topic", flat=True)) == {"discovery.interests-changed"}
    user_interests_set(user=member, affinities={"ai": 0.9, "fintech": 0.8, "health": 0.7})  # nothing changed
    user_interests_set(user=member, affinities={"ai": 0.5, "fintech": 0.8})  # ai changed, but a job waits; health gone
    assert DiscoveryJob.objects.filter(user=member).count() == 3  # one in flight per interest
    assert sorted(UserInterest.objects.filter(user=member).values_list("interest__slug", "affinity")) == [
        ("ai", 0.5),
        ("fintech", 0.8),
    ]
    discovery_jobs_process_batch()
    user_interests_set(user=member, affinities={"ai": 0.6, "fintech": 0.8})
    assert DiscoveryJob.objects.filter(user=member, status="queued").values_list("interest__slug", flat=True)[0] == "ai"


@pytest.mark.parametrize(
    ("affinities", "field"),
    [({"astrology": 0.5}, "interests"), ({"ai": 1.5}, "interests.ai"), ({"ai": "high"}, "interests.ai")],
)
def test_bad_interests_are_refused_naming_the_field_and_nothing_is_written(member, affinities, field):
    with pytest.raises(InvalidInput) as refused:
        user_interests_set(user=member, affinities={"fintech": 0.8, **affinities})
    assert field in refused.value.fields
    assert not UserInterest.objects.filter(user=member).exists() and not DiscoveryJob.objects.exists()


def test_the_worker_records_a_gap_for_too_few_candidates_and_clears_it_when_filled(member, settings):
    settings.DISCOVERY_MIN_CANDIDATES = 3
    user_interests_set(user=member, affinities={"ai": 0.9})
    assert discovery_jobs_process_batch() == 1
    job = DiscoveryJob.objects.get(user=member)
    assert (job.status, job.candidates_found, job.finished_at is not None) == ("done", 1, True)
    gap = Gap.objects.get(interest__slug="ai")
    assert (gap.candidates_found, gap.candidates_needed) == (1, 3)
    category = Category.objects.get(slug="ai-tools")
    Candidate.objects.bulk_create([Candidate(name=f"tool {i}", category=category) for i in range(2)])
    user_interests_set(user=member, affinities={"ai": 0.8})
    discovery_jobs_process_batch()
    assert not Gap.objects.filter(interest__slug="ai").exists()
    history = QueueHistory.objects.filter(item_id=job.pk, queue="discovery.discoveryjob").order_by("id")
    assert list(history.values_list("event", flat=True)) == ["submit", "claim", "ack"]


def test_an_interest_with_no_category_gets_one(member):
    Interest.objects.create(slug="space", name="Space")
    user_interests_set(user=member, affinities={"space": 1.0})
    assert Category.objects.filter(slug="space", interests__slug="space").exists()


def test_a_failing_job_retries_then_dies_and_a_requeue_brings_it_back(member, settings, monkeypatch):
    settings.OPS_BACKOFF_BASE_SECONDS = 0.0
    user_interests_set(user=member, affinities={"climate": 0.9})
    job = DiscoveryJob.objects.get(user=member)
    DiscoveryJob.objects.filter(pk=job.pk).update(max_attempts=2)
    real = services.discovery_job_process

    def broken(*, lease):
        raise RuntimeError("catalog unreachable")

    monkeypatch.setattr(services, "discovery_job_process", broken)
    discovery_jobs_process_batch()
    job.refresh_from_db()
    assert (job.status, job.attempts, "catalog unreachable" in job.last_error) == ("queued", 1, True)
    DiscoveryJob.objects.filter(pk=job.pk).update(available_at=Now())
    discovery_jobs_process_batch()
    job.refresh_from_db()
    assert job.status == "dead"
    letter = DeadLetter.objects.get(queue="discovery.discoveryjob", item_id=job.pk)
    monkeypatch.setattr(services, "discovery_job_process", real)
    assert dead_letters_requeue(dead_letter_ids=[letter.pk]) == 1
    discovery_jobs_process_batch()
    job.refresh_from_db()
    assert job.status == "done" and job.candidates_found == 1


def test_a_crashed_workers_job_is_rescued_and_a_poison_pill_dies_of_rescues(member):
    from datetime import timedelta

    from discovery.queue import discovery_queue

    user_interests_set(user=member, affinities={"ai": 0.9})
    job = DiscoveryJob.objects.get(user=member)
    for rescue in range(1, 5):
        (lease,) = discovery_queue.claim(owner=f"crashed-{rescue}", limit=1, ttl=30)
        DiscoveryJob.objects.filter(pk=job.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
        result = discovery_queue.release_expired()
        job.refresh_from_db()
        if rescue <= 3:
            assert (result.requeued, job.status, job.rescues) == ([job.pk], "queued", rescue)
    assert (result.dead, job.status) == ([job.pk], "dead")
    letter = DeadLetter.objects.get(queue="discovery.discoveryjob", item_id=job.pk)
    assert letter.reason == "rescues" and "expired 4 times" in letter.last_error
    # A result that arrives after the lease was lost is dropped, not written.
    assert dead_letters_requeue(dead_letter_ids=[letter.pk]) == 1
    (lease,) = discovery_queue.claim(owner="slow", limit=1, ttl=30)
    DiscoveryJob.objects.filter(pk=job.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
    discovery_queue.release_expired()
    from matchplatform.exceptions import LeaseLost

    with pytest.raises(LeaseLost):
        services.discovery_job_process(lease=lease)
    job.refresh_from_db()
    assert (job.status, job.candidates_found) == ("queued", None)


def test_the_beat_task_asks_again_after_a_full_batch_and_wakes_on_commit(
    member, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from discovery import tasks

    settings.DISCOVERY_CLAIM_BATCH = 2
    settings.OPS_WAKE_WORKERS = True
    sent: list[str] = []
    monkeypatch.setattr(tasks.process_batch, "delay", lambda: sent.append("wake"))
    with django_capture_on_commit_callbacks(execute=True):
        user_interests_set(user=member, affinities={"ai": 0.9, "fintech": 0.8, "health": 0.7})
        assert sent == []
    assert sent == ["wake"] * 3  # one nudge per job, once committed
    sent.clear()
    assert tasks.process_batch() == 2 and sent == ["wake"]  # a full batch: there may be more
    assert tasks.process_batch() == 1 and sent == ["wake"]
    assert set(DiscoveryJob.objects.values_list("status", flat=True)) == {"done"}
