"""Promoting a new policy version: the candidate serves the members its flag lets in (nobody in
safe mode), and the staged rollout of that flag is gated on the candidate's OPE lower bound
on the current version's logs (simulated here): a better candidate advances, a worse one rolls
back, and too little data holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from waffle.testutils import override_switch

from discovery.configs import RankerPolicy
from discovery.gates import ope_lower_bound
from discovery.models import LearningEvent
from discovery.policies import (
    OPE_GATE_METRIC,
    RANKER_CANDIDATE_FLAG,
    CandidatePolicy,
    policy_for_user,
    policy_rollout_create,
    policy_scored,
)
from flags.config.services import config_set
from flags.gates import GateWindow, gate_metric_get
from flags.models import Flag
from flags.names import SAFE_MODE
from flags.rollouts.controller import rollouts_tick
from flags.rollouts.services import rollout_start
from flags.rollouts.states import DecisionKind, RolloutState
from flags.services import flag_percent_set
from tests.discovery.test_ope_eval import make_catalog, simulate_logs
from tests.flags.rollout_fakes import T0, at

pytestmark = pytest.mark.django_db

CURRENT_EPSILON = 0.2


@pytest.fixture(autouse=True)
def no_gate_cache(settings):
    settings.OPE_GATE_CACHE_SECONDS = 0


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user(username="rollout-member")


@pytest.fixture
def current_logs(member):
    """The current policy (epsilon 0.2) logged 1500 decisions a day before the rollout starts."""
    config_set("ranker.policy", {"epsilon": CURRENT_EPSILON}, reason="the current policy")
    candidates = make_catalog()
    simulate_logs(
        user=member, candidates=candidates, n=1500, epsilon=CURRENT_EPSILON, decided_at=T0 - timedelta(days=1)
    )
    return candidates


def _candidate(**policy) -> None:
    config_set("ranker.candidate", {"policy": {"version": "epsilon_greedy_v2", **policy}}, reason="candidate")


def _window():
    return GateWindow(flag=RANKER_CANDIDATE_FLAG, since=T0, until=at(1))


def test_the_candidate_serves_the_members_in_its_flag_and_nobody_in_safe_mode(django_user_model):
    members = [django_user_model.objects.create_user(username=f"m{i}") for i in range(40)]
    assert all(type(policy_for_user(user=m)) is RankerPolicy for m in members)  # no candidate
    _candidate(epsilon=0.05, scoring="popularity")
    Flag.objects.create(name=RANKER_CANDIDATE_FLAG, percent=0)
    assert all(policy_for_user(user=m).version == "epsilon_greedy_v1" for m in members)  # 0 %
    flag_percent_set(RANKER_CANDIDATE_FLAG, 50, reason="half")
    served = [policy_for_user(user=m) for m in members]
    treated = [p for p in served if p.version == "epsilon_greedy_v2"]
    assert 5 < len(treated) < 35
    assert all(isinstance(p, CandidatePolicy) and p.epsilon == 0.05 and p.scoring == "popularity" for p in treated)
    assert [policy_for_user(user=m).version for m in members] == [p.version for p in served]  # sticky
    with override_switch(SAFE_MODE, active=True):
        assert {policy_for_user(user=m).epsilon for m in members} == {0.0}  # the current policy's safe value
    # A candidate naming the current version would pool two configs' logs: ignored.
    config_set("ranker.candidate", {"policy": {"version": "epsilon_greedy_v1"}}, reason="oops")
    assert {policy_for_user(user=m).version for m in members} == {"epsilon_greedy_v1"}


def test_policy_scored_scores_by_popularity_for_a_popularity_candidate(member, current_logs):
    from discovery.models import Interest, InterestCategory, UserInterest

    interest = Interest.objects.create(slug="sim-interest", name="Sim")
    InterestCategory.objects.create(interest=interest, category=current_logs[0].category)
    UserInterest.objects.create(user=member, interest=interest, affinity=0.5)
    current = policy_scored(user=member, policy=RankerPolicy(), fallback_size=5)
    popular = policy_scored(user=member, policy=CandidatePolicy(scoring="popularity"), fallback_size=5)
    assert current.candidate_ids == popular.candidate_ids
    assert current.scores == [round(0.5 * c.popularity, 6) for c in current_logs]
    assert popular.scores == [c.popularity for c in current_logs]


def test_the_gate_metric_is_registered_and_holds_without_a_candidate_or_data(member):
    assert gate_metric_get(OPE_GATE_METRIC).compute is ope_lower_bound
    assert ope_lower_bound(_window()).value is None  # no candidate
    _candidate(epsilon=0.05)
    assert "no decisions" in ope_lower_bound(_window()).detail
    simulate_logs(user=member, candidates=make_catalog(), n=1, epsilon=0.2, decided_at=T0 - timedelta(hours=2))
    reading = ope_lower_bound(_window())
    assert reading.value is None and reading.sample == 1


def test_the_gate_reads_the_lower_bound_of_the_lift(current_logs):
    _candidate(epsilon=0.02)  # greedier: the top item is the best one here, so better
    better = ope_lower_bound(_window())
    assert better.value is not None and better.value > 0 and better.sample == 1500
    assert "epsilon_greedy_v2 vs epsilon_greedy_v1" in better.detail
    _candidate(epsilon=0.9)
    worse = ope_lower_bound(_window())
    assert worse.value is not None and worse.value < -0.05


def test_logs_without_rewards_are_no_evidence_and_the_gate_holds(member):
    # Nobody clicked: every term of the lift is 0 and its interval [0, 0]; that must not pass
    # a ">= 0" gate.
    config_set("ranker.policy", {"epsilon": CURRENT_EPSILON}, reason="the current policy")
    simulate_logs(user=member, candidates=make_catalog(), n=1500, epsilon=0.2, decided_at=T0 - timedelta(days=1))
    LearningEvent.objects.update(reward=None, rewarded_at=None)
    _candidate(epsilon=0.9)
    reading = ope_lower_bound(_window())
    assert reading.value is None and "0 rewarded of" in reading.detail


def _promotion(**kwargs):
    rollout = policy_rollout_create(
        stages=[5, 25, 100], min_dwell_seconds=0, min_sample=0, min_gate_sample=500, **kwargs
    )
    rollout_start(rollout_id=rollout.pk, now=T0)
    return rollout


def test_a_better_candidate_advances_stage_by_stage_to_everyone(current_logs):
    _candidate(epsilon=0.02)
    rollout = _promotion()
    assert rollout.gates == [{"metric": OPE_GATE_METRIC, "op": ">=", "threshold": 0.0}]
    decisions = [rollouts_tick(now=at(n))[0].decision for n in (1, 2, 3)]
    assert decisions == [DecisionKind.ADVANCE, DecisionKind.ADVANCE, DecisionKind.COMPLETE]
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.COMPLETED
    assert Flag.objects.get(name=RANKER_CANDIDATE_FLAG).percent == 100


def test_a_worse_candidate_rolls_back_to_nobody(current_logs, monkeypatch):
    monkeypatch.setattr("ops.notify.alert_send", lambda **kw: None)
    _candidate(epsilon=0.9)
    rollout = _promotion()
    first = rollouts_tick(now=at(1))[0]
    assert first.decision == DecisionKind.HOLD and OPE_GATE_METRIC in first.reason
    second = rollouts_tick(now=at(2))[0]
    assert second.decision == DecisionKind.ROLLBACK
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert Flag.objects.get(name=RANKER_CANDIDATE_FLAG).percent == 0


def test_too_little_data_holds(member):
    config_set("ranker.policy", {"epsilon": CURRENT_EPSILON}, reason="the current policy")
    simulate_logs(user=member, candidates=make_catalog(), n=100, epsilon=0.2, decided_at=T0 - timedelta(days=1))
    _candidate(epsilon=0.02)
    rollout = _promotion()
    for n in (1, 2, 3):
        assert rollouts_tick(now=at(n))[0].decision == DecisionKind.HOLD
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING and rollout.stage_index == 0
