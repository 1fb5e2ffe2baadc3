"""Two controllers at once (two beat processes, or beat and a manual run) decide each tick
once: the rollout row is locked for the tick (a second controller skips it) and the tick's
key is unique (a controller that comes after the first committed finds it decided)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from flags.gates import GateReading, GateWindow
from flags.models import Flag
from flags.rollouts.controller import TickResult, rollouts_tick
from flags.rollouts.models import RolloutDecision
from flags.rollouts.services import rollout_create, rollout_start
from flags.rollouts.states import DecisionKind
from tests.flags.rollout_fakes import T0, FakeComparative, at
from tests.support.concurrency import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def _start(*, stages=(5, 25, 50)) -> int:
    Flag.objects.create(name="beta_feed", percent=Decimal(0))
    rollout = rollout_create(
        name="beta-feed",
        flag="beta_feed",
        stages=list(stages),
        gates=[{"metric": "test.errors"}],
        min_dwell_seconds=300,
        min_sample=500,
        min_gate_sample=100,
    )
    rollout_start(rollout_id=rollout.pk, now=T0)
    return rollout.pk


class BlockingMetric(FakeComparative):
    """Good figures; the first call waits (inside the first controller's tick) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.set(t=(600, 12), c=(11400, 228))
        self.inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, window: GateWindow) -> GateReading:
        if not self.inside.is_set():
            self.inside.set()
            assert self.release.wait(timeout=30)
        return super().__call__(window)


def test_a_second_controller_skips_a_rollout_another_is_deciding_and_the_tick_is_decided_once(fake_metrics):
    metric = fake_metrics("test.errors", BlockingMetric(), comparative=True)
    rollout_id = _start()
    results: dict[str, list[TickResult]] = {}
    first = Worker(lambda: results.__setitem__("first", rollouts_tick(now=at(11))))
    second = Worker(lambda: results.__setitem__("second", rollouts_tick(now=at(11))))
    for worker in (first, second):
        worker.start()
        assert worker.ready.wait(timeout=30)
    try:
        first.go.set()
        assert metric.inside.wait(timeout=30)  # the first holds the rollout's row
        second.go.set()
        second.join(timeout=30)  # SKIP LOCKED: it does not wait for the first
        assert not second.is_alive()
    finally:
        metric.release.set()
        first.go.set()
        second.go.set()
        first.join(timeout=30)
        second.join(timeout=30)
    assert (first.error, second.error) == (None, None)
    assert [r.decision for r in results["first"]] == [DecisionKind.ADVANCE]
    assert results["second"] == []
    # After the first committed, a late controller on the same tick finds it decided.
    assert rollouts_tick(now=at(11)) == []
    ticks = RolloutDecision.objects.filter(rollout_id=rollout_id, tick_key__startswith="tick:")
    assert ticks.count() == 1


def test_two_controllers_racing_on_every_tick_record_one_decision_per_tick(fake_metrics):
    metric = fake_metrics("test.errors", FakeComparative(), comparative=True)
    metric.set(t=(600, 12), c=(11400, 228))
    rollout_id = _start(stages=(5, 25, 50, 75))
    made: list[TickResult] = []
    lock = threading.Lock()

    def controller(n: int) -> None:
        out = rollouts_tick(now=at(n))
        with lock:
            made.extend(out)

    ticks = [11, 12, 23, 24, 35, 36]
    for n in ticks:
        pair = [Worker(lambda n=n: controller(n)) for _ in range(2)]
        for worker in pair:
            worker.start()
            assert worker.ready.wait(timeout=30)
        for worker in pair:
            worker.go.set()
        for worker in pair:
            worker.join(timeout=60)
            assert worker.error is None
    decisions = list(
        RolloutDecision.objects.filter(rollout_id=rollout_id, tick_key__startswith="tick:")
        .order_by("decided_at")
        .values_list("decision", flat=True)
    )
    assert len(made) == len(ticks) == len(decisions)
    assert decisions == ["advance", "hold", "advance", "hold", "advance", "hold"]
