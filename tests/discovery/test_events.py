"""The events queue: a sign-up publishes an event in the account's transaction, each topic
has its handler, a handler's jobs commit with the event's ack, and failures retry, die and
are requeued by the ops queue's rules. Also the topic registry and the claim filter."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now

import discovery.events as events
import discovery.tasks
import ops.topics
from discovery.events import EVENTS_ALL, INTERESTS_CHANGED, JOBS_ALL, USER_SIGNUP, event_publish
from discovery.models import DiscoveryEvent, DiscoveryJob, Interest, UserInterest
from discovery.queue import discovery_queue, events_queue
from discovery.services import catalog_seed_day0, events_process_batch, user_interests_set
from discovery.tasks import events_process
from ops.models import DeadLetter, QueueHistory
from ops.services import dead_letters_requeue
from ops.topics import UnknownTopic, topic_get, topic_register, topic_work, topics_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(django_user_model):
    catalog_seed_day0()
    return django_user_model.objects.create_user(username="newcomer")  # no password: hashing one costs a second


def interests(member, *slugs: str) -> None:
    """Give the member interests without queueing anything (as a sign-up form might)."""
    for slug in slugs:
        UserInterest.objects.create(user=member, interest=Interest.objects.get(slug=slug), affinity=0.7)


def job_slugs(member) -> list[str]:
    return sorted(DiscoveryJob.objects.filter(user=member).values_list("interest__slug", flat=True))


def test_a_sign_up_publishes_one_event_in_its_transaction_and_its_handler_queues_discovery(member, django_user_model):
    event = DiscoveryEvent.objects.get(user=member)
    assert (event.topic, event.status, event.payload) == (USER_SIGNUP, "queued", {})
    history = QueueHistory.objects.get(queue=events_queue.label, item_id=event.pk)
    assert (history.event, history.to_status) == ("publish", "queued")
    member.save()  # a later save is no sign-up
    assert DiscoveryEvent.objects.filter(user=member).count() == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        django_user_model.objects.create_user(username="rolled-back")
        raise RuntimeError("sign-up failed")
    assert not DiscoveryEvent.objects.filter(user__username="rolled-back").exists()

    interests(member, "ai", "fintech")
    work = topic_work(topic=USER_SIGNUP, limit=10, ttl=60)
    assert (work.claimed, work.processed, work.errors, work.dead) == (1, 1, 0, 0)
    event.refresh_from_db()
    assert (event.status, event.finished_at is not None) == ("done", True)
    assert job_slugs(member) == ["ai", "fintech"]
    assert set(DiscoveryJob.objects.values_list("topic", flat=True)) == {USER_SIGNUP}


def test_fixture_loads_are_not_sign_ups(member, django_user_model):
    from discovery.hooks_events import _user_signed_up

    _user_signed_up(sender=django_user_model, instance=member, created=True, raw=True)
    assert DiscoveryEvent.objects.filter(user=member).count() == 1


def test_interests_changed_events_queue_the_interests_they_name_or_all(member):
    interests(member, "ai", "fintech", "health")
    ai = Interest.objects.get(slug="ai").pk
    event_publish(topic=INTERESTS_CHANGED, user=member, payload={"interest_ids": [ai]})
    assert topic_work(topic=INTERESTS_CHANGED, limit=10, ttl=60).processed == 1
    assert job_slugs(member) == ["ai"]
    event_publish(topic=INTERESTS_CHANGED, user=member)  # no ids: every interest (ai has a job in flight)
    assert topic_work(topic=INTERESTS_CHANGED, limit=10, ttl=60).processed == 1
    assert job_slugs(member) == ["ai", "fintech", "health"]
    # The sign-up event is another topic: still waiting.
    assert DiscoveryEvent.objects.get(topic=USER_SIGNUP).status == "queued"


def test_user_interests_set_queues_jobs_directly_and_publishes_no_event(member):
    user_interests_set(user=member, affinities={"ai": 0.9})
    assert job_slugs(member) == ["ai"]
    assert not DiscoveryEvent.objects.filter(topic=INTERESTS_CHANGED).exists()


def test_an_unknown_topic_is_refused_at_publish_and_named_with_the_known_ones(member):
    with pytest.raises(UnknownTopic) as refused:
        event_publish(topic="discovery.nope", user=member)
    assert "discovery.nope" in str(refused.value) and USER_SIGNUP in str(refused.value)
    with pytest.raises(UnknownTopic):
        event_publish(topic=JOBS_ALL, user=member)  # a worker topic of the jobs queue, not an event
    with pytest.raises(UnknownTopic):
        topic_get("discovery.nope")
    assert {t.name for t in topics_all(queue=events_queue.label)} == {EVENTS_ALL, USER_SIGNUP, INTERESTS_CHANGED}


def test_a_topic_name_cannot_move_to_another_queue():
    with pytest.raises(ValueError, match="already belongs"):
        topic_register(name=USER_SIGNUP, queue=discovery_queue, handle=lambda *, lease: None)
    assert topic_get(USER_SIGNUP).queue == events_queue.label


def test_the_beat_task_handles_every_topic_by_its_own_handler(member, django_user_model):
    other = django_user_model.objects.create_user(username="second")
    interests(member, "ai")
    interests(other, "climate")
    event_publish(topic=INTERESTS_CHANGED, user=member, payload={"interest_ids": []})
    assert events_process() == {"claimed": 3, "processed": 3, "errors": 0, "dead": 0}
    assert sorted(DiscoveryJob.objects.values_list("user__username", "interest__slug")) == [
        ("newcomer", "ai"),
        ("second", "climate"),
    ]
    assert events_process()["claimed"] == 0


def test_a_full_batch_asks_for_another(member, settings, monkeypatch):
    settings.DISCOVERY_EVENTS_CLAIM_BATCH = 1
    sent: list[str] = []
    monkeypatch.setattr(events_process, "delay", lambda: sent.append("again"))
    events_process()
    assert sent == ["again"]


def test_a_failing_handler_writes_nothing_retries_dies_and_is_requeued(member, settings, monkeypatch):
    settings.OPS_BACKOFF_BASE_SECONDS = 0.0
    interests(member, "ai")
    event = DiscoveryEvent.objects.get(user=member)
    DiscoveryEvent.objects.filter(pk=event.pk).update(max_attempts=2)

    def half_done(*, event):
        from discovery.services import discovery_enqueue_for_user

        discovery_enqueue_for_user(user=event.user)  # written, then undone with the ack
        raise RuntimeError("downstream unavailable")

    broken = dataclasses.replace(
        topic_get(USER_SIGNUP), handle=functools.partial(events._event_handle, handler=half_done)
    )
    monkeypatch.setitem(ops.topics._TOPICS, USER_SIGNUP, broken)
    work = events_process_batch()
    assert (work.processed, work.errors, work.dead) == (0, 1, 0)
    event.refresh_from_db()
    assert (event.status, event.attempts, "downstream unavailable" in event.last_error) == ("queued", 1, True)
    assert not DiscoveryJob.objects.exists()
    DiscoveryEvent.objects.filter(pk=event.pk).update(available_at=Now())
    work = events_process_batch()
    assert (work.processed, work.errors, work.dead) == (0, 1, 1)
    event.refresh_from_db()
    assert event.status == "dead"
    letter = DeadLetter.objects.get(queue=events_queue.label, item_id=event.pk)
    assert letter.reason == "attempts" and len(letter.errors) == 2
    monkeypatch.undo()
    assert dead_letters_requeue(dead_letter_ids=[letter.pk]) == 1
    assert events_process_batch().processed == 1
    event.refresh_from_db()
    assert event.status == "done" and job_slugs(member) == ["ai"]
    steps = QueueHistory.objects.filter(queue=events_queue.label, item_id=event.pk).order_by("id")
    assert list(steps.values_list("event", flat=True)) == [
        "publish",
        "claim",
        "retry",
        "claim",
        "dead",
        "requeue",
        "claim",
        "ack",
    ]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [(INTERESTS_CHANGED, {"interest_ids": "ai"}), (INTERESTS_CHANGED, {"interest_ids": [True]}), ("gone", {})],
)
def test_a_malformed_event_is_dead_at_once_without_using_its_attempts(member, topic, payload):
    event = DiscoveryEvent.objects.create(topic=topic, payload=payload, user=member)
    work = events_process_batch()
    assert (work.claimed, work.processed, work.errors, work.dead) == (2, 1, 1, 1)
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("dead", 1)
    assert DeadLetter.objects.get(queue=events_queue.label, item_id=event.pk).reason == "permanent"


def test_a_claim_filter_picks_only_matching_rows_on_both_claim_paths(member, django_user_model):
    for name in ("a", "b", "c"):
        django_user_model.objects.create_user(username=name)
    ai = Interest.objects.get(slug="ai").pk
    event_publish(topic=INTERESTS_CHANGED, user=member, payload={"interest_ids": [ai]})
    # PostgreSQL's one-statement claim, with a filter on a column and one through a join.
    assert [
        lease.id for lease in events_queue.claim(owner="t", limit=10, ttl=30, where={"topic": INTERESTS_CHANGED})
    ] == [DiscoveryEvent.objects.get(topic=INTERESTS_CHANGED).pk]
    joined = events_queue.claim(owner="t", limit=10, ttl=30, where=Q(user__username__in=["a", "b%"]))
    assert [lease.id for lease in joined] == [DiscoveryEvent.objects.get(user__username="a").pk]
    # The portable claim (SQLite's), run here on PostgreSQL: the same rule.
    generic = events_queue._claim_generic(owner="t", limit=10, ttl=30, where=Q(user__username__in=["b", "c"]))
    assert [lease.id for lease in generic] == list(
        DiscoveryEvent.objects.filter(user__username__in=["b", "c"]).order_by("id").values_list("pk", flat=True)
    )
    left = DiscoveryEvent.objects.filter(status="queued").values_list("user__username", flat=True)
    assert list(left) == ["newcomer"]
    assert events_queue.claim(owner="t", limit=10, ttl=30, where={"pk__in": []}) == []  # matches nothing
    assert len(events_queue.claim(owner="t", limit=10, ttl=30, where=Q())) == 1  # matches everything


def test_a_published_event_wakes_the_events_worker_on_commit(
    member, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.OPS_WAKE_WORKERS = True
    sent: list[str] = []
    monkeypatch.setattr(discovery.tasks.events_process, "delay", lambda: sent.append("wake"))
    with django_capture_on_commit_callbacks(execute=True):
        event_publish(topic=INTERESTS_CHANGED, user=member)
        assert sent == []  # not before the event is committed
    assert sent == ["wake"]
