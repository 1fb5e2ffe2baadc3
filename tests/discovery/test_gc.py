"""Retention GC: learning events and intent signals past their retention go, batch by batch,
counted; the rows of an open attribution window stay, even when the retention is shorter
than the window (and in safe mode, whose policy answers a shorter window)."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from discovery.gc import INTENT_SIGNALS, LEARNING_EVENTS, attribution_window_seconds, retention_gc_run
from discovery.models import Candidate, Category, IntentSignal, LearningEvent
from discovery.tasks_operating import gc
from flags.config.services import config_set
from flags.names import SAFE_MODE
from flags.services import switch_set

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def world():
    member = User.objects.create(username="gc-member")
    category = Category.objects.create(slug="gc", name="GC")
    candidate = Candidate.objects.create(name="gc candidate", category=category, popularity=0.5)
    return member, candidate


def event(world, *, ago: timedelta, now: datetime) -> LearningEvent:
    member, candidate = world
    return LearningEvent.objects.create(
        user=member,
        policy_version="epsilon_greedy_v1",
        policy_hash="h",
        candidate_ids=[candidate.pk],
        distribution=[1.0],
        slate=[candidate.pk],
        chosen=candidate,
        p_exp=1.0,
        seed=1,
        score=0.5,
        decided_at=now - ago,
    )


def signal(world, *, ago: timedelta, now: datetime, decision: LearningEvent | None = None) -> IntentSignal:
    member, candidate = world
    return IntentSignal.objects.create(
        user=member, candidate=candidate, kind="click", decision=decision, created_at=now - ago
    )


def retention(days: int, batch_size: int = 5000) -> None:
    config_set(
        "discovery.retention",
        {"learning_events_days": days, "intent_signals_days": days, "batch_size": batch_size},
        reason="test",
    )


def test_open_attribution_windows_are_kept_even_when_retention_is_shorter(world):
    now = timezone.now()
    retention(days=1)
    config_set("ranker.policy", {"attribution_seconds": 2 * 24 * 3600}, reason="a two-day window")
    open_decision = event(world, ago=1.5 * DAY, now=now)  # past retention, window still open
    open_signal = signal(world, ago=1.4 * DAY, now=now, decision=open_decision)
    lone_signal = signal(world, ago=1.9 * DAY, now=now)  # could still join an open decision
    closed = event(world, ago=3 * DAY, now=now)
    old_signal = signal(world, ago=3 * DAY, now=now, decision=closed)

    result = retention_gc_run(now=now)

    assert result.deleted == {LEARNING_EVENTS: 1, INTENT_SIGNALS: 1}
    assert result.attribution_seconds == 2 * 24 * 3600
    assert set(LearningEvent.objects.values_list("pk", flat=True)) == {open_decision.pk}
    assert set(IntentSignal.objects.values_list("pk", flat=True)) == {open_signal.pk, lone_signal.pk}
    assert not IntentSignal.objects.filter(pk=old_signal.pk).exists()
    open_signal.refresh_from_db()
    assert open_signal.decision_id == open_decision.pk


def test_safe_mode_answers_a_shorter_window_but_the_gc_keeps_the_stored_one(world):
    now = timezone.now()
    retention(days=1)
    config_set("ranker.policy", {"attribution_seconds": 2 * 24 * 3600}, reason="a two-day window")
    switch_set(SAFE_MODE, True, reason="test")
    assert attribution_window_seconds() == 2 * 24 * 3600
    kept = event(world, ago=1.5 * DAY, now=now)
    retention_gc_run(now=now)
    assert LearningEvent.objects.filter(pk=kept.pk).exists()


def test_rows_past_retention_go_in_batches_counted_and_a_kept_signal_loses_only_its_link(world):
    now = timezone.now()
    retention(days=30, batch_size=3)
    old_events = [event(world, ago=(40 + i) * DAY, now=now) for i in range(8)]
    for i in range(7):
        signal(world, ago=(35 + i) * DAY, now=now)
    recent_event = event(world, ago=10 * DAY, now=now)
    recent_signal = signal(world, ago=5 * DAY, now=now)
    # A decision past retention with a late signal that is not: the signal stays, unlinked.
    late = signal(world, ago=29 * DAY, now=now, decision=old_events[0])
    seen: list[tuple[str, int, int]] = []

    result = retention_gc_run(now=now, progress=lambda table, batch, total: seen.append((table, batch, total)))

    assert result.deleted == {LEARNING_EVENTS: 8, INTENT_SIGNALS: 7}
    assert result.batches == 6 and result.complete
    assert seen == [
        (INTENT_SIGNALS, 3, 3),
        (INTENT_SIGNALS, 3, 6),
        (INTENT_SIGNALS, 1, 7),
        (LEARNING_EVENTS, 3, 3),
        (LEARNING_EVENTS, 3, 6),
        (LEARNING_EVENTS, 2, 8),
    ]
    assert list(LearningEvent.objects.values_list("pk", flat=True)) == [recent_event.pk]
    assert set(IntentSignal.objects.values_list("pk", flat=True)) == {recent_signal.pk, late.pk}
    late.refresh_from_db()
    assert late.decision_id is None
    assert retention_gc_run(now=now).deleted == {LEARNING_EVENTS: 0, INTENT_SIGNALS: 0}  # idempotent


def test_a_dry_run_counts_and_deletes_nothing_and_a_time_budget_stops_between_batches(world):
    now = timezone.now()
    retention(days=30, batch_size=2)
    for i in range(5):
        event(world, ago=(31 + i) * DAY, now=now)
    dry = retention_gc_run(now=now, dry_run=True)
    assert dry.deleted == {LEARNING_EVENTS: 5, INTENT_SIGNALS: 0} and dry.batches == 0
    assert LearningEvent.objects.count() == 5
    stopped = retention_gc_run(now=now, max_seconds=0)
    assert not stopped.complete and stopped.deleted[LEARNING_EVENTS] < 5


def test_the_command_and_the_beat_task_run_the_gc(world):
    now = timezone.now()
    retention(days=30, batch_size=2)
    for i in range(3):
        event(world, ago=(31 + i) * DAY, now=now)
    out = StringIO()
    call_command("discovery_gc", "--dry-run", stdout=out)
    assert "learning_events: would delete 3" in out.getvalue() and LearningEvent.objects.count() == 3
    out = StringIO()
    call_command("discovery_gc", stdout=out)
    text = out.getvalue()
    assert "learning_events: deleted 2 (2 so far)" in text and "learning_events: deleted 3 older than" in text
    assert LearningEvent.objects.count() == 0
    event(world, ago=40 * DAY, now=now)
    assert gc.run()["deleted"] == {LEARNING_EVENTS: 1, INTENT_SIGNALS: 0}
