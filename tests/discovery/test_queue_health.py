"""Health of discovery's queues (selectors, staff API, admin): rows per status, the p95 and
oldest age of claimable queued rows (PostgreSQL's percentile and the portable one agree),
and the dead letters of both queues, listed and requeued."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from rest_framework.test import APIClient

import discovery.services as services
from discovery.events import INTERESTS_CHANGED, event_publish
from discovery.health_queues import (
    _ages_portable,
    _ages_postgresql,
    discovery_queue_health,
    events_queue_health,
)
from discovery.models import DiscoveryEvent, DiscoveryJob, Interest
from discovery.services import catalog_seed_day0, discovery_jobs_process_batch, events_process_batch
from ops.models import DeadLetter

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(django_user_model):
    catalog_seed_day0()
    return django_user_model.objects.create_user(username="member")  # no password: hashing costs a second


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user(username="ops", is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


def aged_jobs(member, ages: list[int]) -> list[DiscoveryJob]:
    """Queued jobs made claimable this many seconds ago, one per interest of the catalog."""
    slugs = list(Interest.objects.order_by("slug").values_list("slug", flat=True))
    jobs = []
    for slug, age in zip(slugs, ages, strict=False):
        job = DiscoveryJob.objects.create(
            topic="discovery.refresh", user=member, interest=Interest.objects.get(slug=slug)
        )
        DiscoveryJob.objects.filter(pk=job.pk).update(available_at=Now() - timedelta(seconds=age))
        jobs.append(job)
    return jobs


def test_an_empty_queue_has_no_ages(member):
    health = discovery_queue_health()
    assert health == {
        "queue": "discovery.discoveryjob",
        "counts": {"queued": 0, "processing": 0, "dead": 0},
        "delayed": 0,
        "waiting": 0,
        "p95_age_seconds": None,
        "oldest_age_seconds": None,
    }


def test_counts_by_status_and_the_p95_and_oldest_age_of_claimable_rows(member):
    jobs = aged_jobs(member, [10, 20, 30, 40, 50, 600])
    DiscoveryJob.objects.filter(pk=jobs[0].pk).update(status="processing")
    DiscoveryJob.objects.filter(pk=jobs[1].pk).update(status="dead")
    DiscoveryJob.objects.filter(pk=jobs[2].pk).update(available_at=Now() + timedelta(seconds=60))  # backoff
    health = discovery_queue_health(include_done=True)
    assert health["counts"] == {"queued": 4, "processing": 1, "dead": 1, "done": 0}
    assert (health["delayed"], health["waiting"]) == (1, 3)
    # Ages 40, 50, 600: the nearest-rank p95 of three rows is the third.
    assert health["p95_age_seconds"] == pytest.approx(600, abs=2)
    assert health["oldest_age_seconds"] == pytest.approx(600, abs=2)
    assert "done" not in discovery_queue_health()["counts"]


def test_postgresqls_percentile_and_the_portable_one_agree(member):
    aged_jobs(member, [5, 100, 200, 300, 400, 900])
    assert _ages_postgresql(table=DiscoveryJob._meta.db_table) == (
        6,
        pytest.approx(900, abs=2),
        pytest.approx(900, abs=2),
    )
    # 20 rows aged 1..20 s: the nearest rank is ceil(0.95 * 20) = 19, so 19 s (a continuous
    # p95 would say 19.05); both computations pick that row.
    DiscoveryJob.objects.all().delete()
    for age in range(1, 21):
        interest = Interest.objects.create(slug=f"i{age:02d}", name=f"I{age}")
        job = DiscoveryJob.objects.create(topic="discovery.refresh", user=member, interest=interest)
        DiscoveryJob.objects.filter(pk=job.pk).update(available_at=Now() - timedelta(seconds=age))
    pg = _ages_postgresql(table=DiscoveryJob._meta.db_table)
    portable = _ages_portable(model=DiscoveryJob)
    assert pg[0] == portable[0] == 20
    assert pg[1] == pytest.approx(19, abs=0.5) and portable[1] == pytest.approx(pg[1], abs=0.5)
    assert pg[2] == pytest.approx(20, abs=0.5) and portable[2] == pytest.approx(pg[2], abs=0.5)
    assert _ages_portable(model=DiscoveryEvent)[0] == 1  # the sign-up event


def test_the_events_queue_has_its_own_health(member):
    event_publish(topic=INTERESTS_CHANGED, user=member)
    health = events_queue_health()
    assert health["queue"] == "discovery.discoveryevent"
    assert health["counts"]["queued"] == 2 and health["waiting"] == 2  # the sign-up and this one


def test_the_staff_api_answers_health_for_staff_only(member, staff):
    aged_jobs(member, [42])
    answer = staff.get("/api/staff/queues/discovery/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["counts"] == {"queued": 1, "processing": 0, "dead": 0, "done": 0}
    assert body["p95_age_seconds"] == pytest.approx(42, abs=2)
    assert staff.get("/api/staff/queues/events/health").json()["counts"]["queued"] == 2
    missing = staff.get("/api/staff/queues/nope/health")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    signed_in = APIClient()
    signed_in.force_authenticate(member)
    assert signed_in.get("/api/staff/queues/discovery/health").status_code == 403
    assert APIClient().get("/api/staff/queues/discovery/health").status_code == 401


def test_dead_letters_of_both_queues_are_listed_and_requeued_through_the_api(member, staff, monkeypatch):
    (job,) = aged_jobs(member, [1])
    DiscoveryJob.objects.filter(pk=job.pk).update(max_attempts=1)
    event = DiscoveryEvent.objects.create(topic="discovery.gone", user=member)  # no handler: dead at once

    def broken(*, lease):
        raise RuntimeError("catalog unreachable")

    monkeypatch.setattr(services, "discovery_job_process", broken)
    discovery_jobs_process_batch()
    events_process_batch()
    monkeypatch.undo()
    jobs_letters = staff.get("/api/staff/queues/discovery/dead-letters").json()["dead_letters"]
    events_letters = staff.get("/api/staff/queues/events/dead-letters").json()["dead_letters"]
    assert [(d["item_id"], d["reason"]) for d in jobs_letters] == [(job.pk, "attempts")]
    assert "catalog unreachable" in jobs_letters[0]["last_error"]
    assert [(d["item_id"], d["reason"]) for d in events_letters] == [(event.pk, "permanent")]
    # A letter of the other queue is not requeued through this one.
    wrong = staff.post(
        "/api/staff/queues/discovery/dead-letters/requeue", {"ids": [events_letters[0]["id"]]}, format="json"
    )
    assert wrong.json() == {"requeued": 0}
    requeued = staff.post(
        "/api/staff/queues/discovery/dead-letters/requeue", {"ids": [jobs_letters[0]["id"]]}, format="json"
    )
    assert requeued.json() == {"requeued": 1}
    assert DeadLetter.objects.get(pk=jobs_letters[0]["id"]).requeued_at is not None
    assert discovery_jobs_process_batch() == 1
    assert DiscoveryJob.objects.get(pk=job.pk).status == "done"
    assert staff.get("/api/staff/queues/discovery/dead-letters").json() == {"dead_letters": []}
    bad = staff.post("/api/staff/queues/events/dead-letters/requeue", {"ids": []}, format="json")
    assert bad.status_code == 400 and "ids" in bad.json()["error"]["fields"]


def test_the_admin_lists_show_each_queues_health(member, client, django_user_model):
    aged_jobs(member, [30])
    root = django_user_model.objects.create_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    jobs_page = client.get("/admin/discovery/discoveryjob/").content.decode()
    assert "Discovery queue: queued 1, processing 0, dead 0, done 0" in jobs_page
    events_page = client.get("/admin/discovery/discoveryevent/")
    assert events_page.status_code == 200 and "Events queue: queued 2" in events_page.content.decode()
    event = DiscoveryEvent.objects.first()
    assert client.get(f"/admin/discovery/discoveryevent/{event.pk}/change/").status_code == 200
