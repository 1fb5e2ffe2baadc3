"""The rollouts on /metrics (flags/rollouts/metrics.py): the percentage is what the flag
serves now, and the decisions counter never falls, even when old holds are pruned."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from flags.models import Flag
from flags.rollouts.controller import rollouts_tick
from flags.rollouts.metrics import rollout_metrics
from flags.rollouts.models import Rollout, RolloutDecision
from flags.rollouts.services import rollout_advance, rollout_create, rollout_rollback, rollout_start, rollouts_prune
from tests.flags.rollout_fakes import T0, at

pytestmark = pytest.mark.django_db

LABELS = (("flag", "beta_feed"), ("rollout", "beta-feed"))


def _running() -> Rollout:
    Flag.objects.create(name="beta_feed", percent=Decimal(0))
    rollout = rollout_create(name="beta-feed", flag="beta_feed", stages=[5, 25, 50], gates=[])
    rollout_start(rollout_id=rollout.pk, now=T0)
    rollout.refresh_from_db()
    return rollout


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in rollout_metrics()
        for sample in family.samples
    }


def _decisions(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        dict(labels)["decision"]: value
        for (name, labels), value in samples.items()
        if name == "matchplatform_rollout_decisions_total"
    }


def test_the_percent_is_what_the_flag_serves_so_a_rollback_shows_zero():
    rollout = _running()
    rollout_advance(rollout_id=rollout.pk, now=at(1))
    assert _samples()[("matchplatform_rollout_percent", LABELS)] == 25

    rollout_rollback(rollout_id=rollout.pk, now=at(2))
    rollout.refresh_from_db()
    assert rollout.flag.percent == 0 and rollout.percent == 25  # the flag serves 0 %, the stage was 25 %
    samples = _samples()
    assert samples[("matchplatform_rollout_percent", LABELS)] == 0, "the flag serves 0 % after a rollback"
    assert samples[("matchplatform_rollout_stage_percent", LABELS)] == 25
    assert samples[("matchplatform_rollout_state", (*LABELS, ("state", "rolled_back")))] == 1


def test_pruning_old_holds_never_lowers_the_decisions_counter():
    rollout = _running()
    # The controller holds: the stage's dwell (600 s) has not passed.
    for tick in range(1, 5):
        (result,) = rollouts_tick(now=at(tick))
        assert result.decision == "hold", result.reason
    assert RolloutDecision.objects.filter(rollout=rollout, decision="hold").count() == 4
    before = _samples()

    # A month on, the holds are pruned and an operator advances.
    later = T0 + timedelta(days=40)
    assert rollouts_prune(keep_days=30, now=later)["holds"] == 4
    rollout_advance(rollout_id=rollout.pk, now=later)
    after = _samples()
    for decision, value in _decisions(before).items():
        assert _decisions(after)[decision] >= value, f"the {decision} counter fell: {value} -> {_decisions(after)}"
    assert _decisions(after)["advance"] == 1
    assert _decisions(before)["start"] == 1
    assert "hold" not in _decisions(before), "holds are pruned, so they are not counted"
    # Holds are a gauge instead: is the rollout holding now?
    assert before[("matchplatform_rollout_holding", LABELS)] == 1, "the latest decision was a hold"
    assert after[("matchplatform_rollout_holding", LABELS)] == 0, "the latest decision is the advance"
