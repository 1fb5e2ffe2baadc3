"""The rollout controller against fake gate metrics: it advances on good figures only after
the dwell and the sample, holds on no data, on a failed metric and on a sample ratio
mismatch, rolls back on N consecutive breaches (not on one noisy tick), records every
decision with its figures, and notifies on a rollback."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from flags.models import Flag
from flags.names import SAFE_MODE
from flags.rollouts.controller import rollouts_tick
from flags.rollouts.models import Rollout, RolloutDecision, RolloutExposure
from flags.rollouts.services import (
    rollout_advance,
    rollout_create,
    rollout_pause,
    rollout_resume,
    rollout_rollback,
    rollout_start,
)
from flags.rollouts.states import DecisionKind, RolloutState, RolloutTransitionError
from flags.services import flag_enabled, flag_percent_set, safe_mode_active
from matchplatform.exceptions import Conflict, InvalidInput
from tests.flags.rollout_fakes import T0, TICK, FakeAbsolute, FakeComparative, GateError, at

pytestmark = pytest.mark.django_db

GOOD = {"t": (600, 12), "c": (11400, 228)}  # 2 % both sides, enough sample
BAD = {"t": (600, 48), "c": (11400, 228)}  # 8 % against 2 %


@pytest.fixture
def alerts(monkeypatch) -> list[dict]:
    """What the controller asked ops.notify to send (delivery itself is ops' to test)."""
    sent: list[dict] = []
    monkeypatch.setattr("ops.notify.alert_send", lambda **kw: sent.append(kw))
    return sent


@pytest.fixture
def errors(fake_metrics) -> FakeComparative:
    return fake_metrics("test.errors", FakeComparative(), comparative=True)


def _rollout(*, stages=(5, 25, 50), gates=None, start=True, **kwargs) -> Rollout:
    Flag.objects.get_or_create(name="beta_feed", defaults={"percent": Decimal(0)})
    options = {"min_dwell_seconds": 300, "min_sample": 500, "min_gate_sample": 100} | kwargs
    rollout = rollout_create(
        name="beta-feed",
        flag="beta_feed",
        stages=list(stages),
        gates=[{"metric": "test.errors"}] if gates is None else gates,
        **options,
    )
    if start:
        rollout_start(rollout_id=rollout.pk, now=T0)
    rollout.refresh_from_db()
    return rollout


def _tick(n: int):
    (result,) = rollouts_tick(now=at(n))
    return result


def _flag_percent() -> Decimal:
    return Flag.objects.get(name="beta_feed").percent


def test_it_advances_on_good_figures_only_after_the_dwell_and_the_sample(errors):
    rollout = _rollout()
    assert _flag_percent() == 5
    errors.set(**GOOD)
    for n in range(1, 10):  # 31 s .. 271 s: the dwell is 300 s
        result = _tick(n)
        assert result.decision == DecisionKind.HOLD
        assert "dwell" in result.reason
    errors.set(t=(300, 6), c=(5700, 114))  # dwell done, sample 300 < 500
    result = _tick(10)
    assert result.decision == DecisionKind.HOLD and "sample 300 < 500" in result.reason
    errors.set(**GOOD)
    result = _tick(11)
    assert result.decision == DecisionKind.ADVANCE, result.reason
    rollout.refresh_from_db()
    assert (rollout.stage_index, rollout.epoch, _flag_percent()) == (1, 2, 25)
    assert rollout.stage_started_at == at(11)
    decision = rollout.decisions.first()
    assert decision.decision == DecisionKind.ADVANCE and decision.percent == 25
    gate = decision.figures["gates"]["0:test.errors"]
    assert (gate["status"], gate["treatment_n"], gate["control_n"]) == ("pass", 600, 11400)
    assert decision.figures["dwell_seconds"] >= 300
    # The gate is read over the stage's window.
    assert errors.windows[-1].since == T0 and errors.windows[-1].until == at(11)
    assert errors.windows[-1].flag == "beta_feed"
    # The new stage's dwell starts again.
    assert _tick(12).decision == DecisionKind.HOLD


def test_after_the_last_stage_it_completes_and_leaves_the_flag_there(errors):
    rollout = _rollout(stages=(5, 50))
    errors.set(**GOOD)
    assert _tick(11).decision == DecisionKind.ADVANCE
    assert _tick(12).decision == DecisionKind.HOLD  # a new dwell
    assert _tick(23).decision == DecisionKind.COMPLETE
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.COMPLETED and _flag_percent() == 50
    assert rollouts_tick(now=at(40)) == []  # nothing running


def test_no_data_holds_and_alerts_once_the_stage_is_old_enough(errors, alerts):
    rollout = _rollout()
    assert _tick(1).decision == DecisionKind.HOLD  # no reading yet
    assert alerts == []  # a stage's first ticks often have no traffic
    for n in range(5, 15):
        result = _tick(n)
        assert result.decision == DecisionKind.HOLD and result.reason.startswith("no data")
    rollout.refresh_from_db()
    assert (rollout.stage_index, _flag_percent(), rollout.alert) == (0, 5, "no_data")
    assert [a["state"] for a in alerts] == ["warn"]  # once, not every tick
    assert alerts[0]["key"] == f"rollout:{rollout.pk}"
    errors.set(**GOOD)
    assert _tick(15).decision == DecisionKind.ADVANCE
    # Data back: the stage moved on, its alert condition cleared, and said so once.
    rollout.refresh_from_db()
    assert rollout.alert == ""
    assert [a["state"] for a in alerts] == ["warn", "recovered"]


def _raise_database_error(window):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM flags_no_such_table")
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "failure", ["gate_error", "database_error", "not_a_reading"], ids=["GateError", "DB error", "bad return"]
)
def test_a_failed_metric_holds_and_alerts_never_advances_never_fails(errors, alerts, fake_metrics, failure):
    if failure == "gate_error":
        errors.fail = GateError("the metrics store is down")
    elif failure == "database_error":
        fake_metrics("test.errors", _raise_database_error, comparative=True)
    else:
        fake_metrics("test.errors", lambda window: {"value": 1}, comparative=True)
    rollout = _rollout()
    for n in range(11, 14):  # dwell done: only the failure stops it
        result = _tick(n)
        assert result.decision == DecisionKind.HOLD
        assert result.reason.startswith("metric failed")
    rollout.refresh_from_db()
    assert (rollout.stage_index, rollout.state, _flag_percent()) == (0, RolloutState.RUNNING, 5)
    assert RolloutDecision.objects.filter(rollout=rollout, decision=DecisionKind.HOLD).count() == 3
    assert [a["state"] for a in alerts] == ["error"]
    if failure == "gate_error":
        errors.fail = None
        errors.set(t=(300, 6), c=(5700, 114))  # working again, the sample still short: a hold
        assert _tick(14).decision == DecisionKind.HOLD
        assert [a["state"] for a in alerts] == ["error", "recovered"]
        errors.set(**GOOD)
        assert _tick(15).decision == DecisionKind.ADVANCE
        assert len(alerts) == 2


def test_a_sample_ratio_mismatch_holds_even_on_good_figures(errors, alerts):
    rollout = _rollout()
    errors.set(**GOOD)
    # 5 % configured; the exposures say 20 % of the units are in the treatment.
    RolloutExposure.objects.bulk_create(
        RolloutExposure(rollout=rollout, epoch=rollout.epoch, unit=f"u{i}", treatment=i < 200, percent=5)
        for i in range(1000)
    )
    result = _tick(11)
    assert result.decision == DecisionKind.HOLD
    assert result.reason.startswith("sample ratio mismatch: treatment has 20.00% of 1000 units, configured 5.00%")
    decision = RolloutDecision.objects.get(rollout=rollout, decision=DecisionKind.HOLD)
    assert decision.figures["srm"]["mismatch"] is True and decision.figures["srm"]["p"] < 0.001
    assert [a["state"] for a in alerts] == ["warn"]
    # The ratio repaired (more control units seen): it advances.
    RolloutExposure.objects.bulk_create(
        RolloutExposure(rollout=rollout, epoch=rollout.epoch, unit=f"v{i}", treatment=False, percent=5)
        for i in range(3000)
    )
    assert _tick(12).decision == DecisionKind.ADVANCE


def test_one_noisy_tick_does_not_roll_back_two_consecutive_breaches_do(errors, alerts):
    rollout = _rollout()
    errors.set(**BAD)
    assert _tick(1).decision == DecisionKind.HOLD  # breach 1
    errors.set(**GOOD)
    assert _tick(2).decision == DecisionKind.HOLD  # a pass resets
    errors.set(**BAD)
    assert _tick(3).decision == DecisionKind.HOLD  # breach 1 again
    rollout.refresh_from_db()
    assert rollout.breach_streaks == {"0:test.errors": 1}
    result = _tick(4)  # breach 2: roll back
    assert result.decision == DecisionKind.ROLLBACK
    assert "breached on 2 consecutive ticks" in result.reason
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK and _flag_percent() == 0
    decision = rollout.decisions.first()
    assert decision.decision == DecisionKind.ROLLBACK and decision.percent == 0
    assert decision.figures["gates"]["0:test.errors"]["status"] == "breach"
    assert decision.figures["gates"]["0:test.errors"]["rate_treatment"] == pytest.approx(0.08)
    (alert,) = alerts
    assert alert["state"] == "rolled_back" and "rolled back" in alert["title"]
    assert alert["fields"]["flag"] == "beta_feed"
    assert rollouts_tick(now=at(5)) == []  # not running any more


def test_a_small_window_is_never_judged(errors):
    _rollout(min_gate_sample=1000)
    errors.set(t=(600, 300), c=(11400, 228))  # 50 % errors, but only 600 requests
    for n in range(1, 6):
        result = _tick(n)
        assert result.decision == DecisionKind.HOLD and "n=600 < 1000" in result.reason


def test_an_absolute_gate_breach_rolls_back_to_0_percent_and_turns_safe_mode_on(fake_metrics, alerts):
    burn = fake_metrics("test.burn", FakeAbsolute(value=1.0, sample=5000))
    rollout = _rollout(gates=[{"metric": "test.burn", "op": "<=", "threshold": 2}], rollback_action="safe_mode")
    assert _tick(1).decision == DecisionKind.HOLD
    burn.value = 14.4
    assert _tick(2).decision == DecisionKind.HOLD
    result = _tick(3)
    assert result.decision == DecisionKind.ROLLBACK and "test.burn <= 2: 14.4" in result.reason
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert safe_mode_active()
    assert _flag_percent() == 0  # the flag declares no safe value: only 0 % ends its treatment
    assert not any(flag_enabled("beta_feed", unit=f"u{i}") for i in range(1000))
    assert [a["state"] for a in alerts] == ["rolled_back"]


def test_a_flag_changed_by_hand_pauses_the_controller(errors):
    rollout = _rollout()
    errors.set(**GOOD)
    flag_percent_set("beta_feed", 40, reason="by hand")
    result = _tick(11)
    assert result.decision == DecisionKind.PAUSE and "changed by hand" in result.reason
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED and _flag_percent() == 40
    rollout_resume(rollout_id=rollout.pk, now=at(12))
    assert _flag_percent() == 5  # the stage's percentage again, and a fresh dwell
    assert _tick(13).decision == DecisionKind.HOLD


def test_a_tick_run_twice_decides_once(errors):
    rollout = _rollout()
    errors.set(**GOOD)
    assert len(rollouts_tick(now=at(11))) == 1
    assert rollouts_tick(now=at(11)) == []  # same slot: already decided (the advance changed the epoch)
    assert rollouts_tick(now=at(11).replace(second=at(11).second + 5)) == []
    assert rollout.decisions.filter(decision=DecisionKind.ADVANCE).count() == 1


def test_two_beats_either_side_of_a_slots_edge_make_one_tick_not_two_breaches(errors):
    """A beat just before a slot's edge and another just after it would each decide on the
    same figures: with a breach that is two consecutive breaches, a rollback from one noisy
    window. The second is no tick."""
    rollout = _rollout()
    errors.set(t=(500, 60), c=(9500, 190))  # 12 % against 2 %: a breach
    edge = T0 + 10 * TICK
    assert rollouts_tick(now=edge - timedelta(seconds=1))[0].decision == DecisionKind.HOLD
    assert rollouts_tick(now=edge + timedelta(seconds=1)) == []
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING and rollout.breach_streaks == {"0:test.errors": 1}
    assert rollouts_tick(now=edge + TICK)[0].decision == DecisionKind.ROLLBACK  # a real second tick


def test_restarting_a_rolled_back_rollout_serves_each_stage_to_the_same_units(errors):
    units = [f"visitor-{i}" for i in range(3000)]

    def served() -> set[str]:
        return {u for u in units if flag_enabled("beta_feed", unit=u)}

    rollout = _rollout()
    first_5 = served()
    assert 90 < len(first_5) < 210
    rollout_advance(rollout_id=rollout.pk, now=at(3))
    first_25 = served()
    assert first_5 < first_25
    rollout_rollback(rollout_id=rollout.pk, reason="bad deploy", now=at(4))
    assert served() == set()
    rollout_start(rollout_id=rollout.pk, now=at(5))  # restart
    rollout.refresh_from_db()
    assert (rollout.state, rollout.stage_index) == (RolloutState.RUNNING, 0)
    assert served() == first_5
    rollout_advance(rollout_id=rollout.pk, now=at(6))
    assert served() == first_25


def test_operator_actions_follow_the_transition_table_and_are_in_the_timeline_and_history(errors, alerts):
    rollout = _rollout(start=False)
    assert rollout.state == RolloutState.DRAFT and _flag_percent() == 0
    with pytest.raises(RolloutTransitionError):
        rollout_pause(rollout_id=rollout.pk)
    rollout_start(rollout_id=rollout.pk, now=at(0), reason="go")
    rollout_pause(rollout_id=rollout.pk, now=at(1))
    assert rollouts_tick(now=at(2)) == []  # paused: the controller leaves it alone
    rollout_resume(rollout_id=rollout.pk, now=at(3))
    rollout_rollback(rollout_id=rollout.pk, now=at(4))
    with pytest.raises(RolloutTransitionError, match="cannot resume from 'rolled_back'"):
        rollout_resume(rollout_id=rollout.pk)
    kinds = list(rollout.decisions.order_by("decided_at", "id").values_list("decision", flat=True))
    assert kinds == ["start", "pause", "resume", "rollback"]
    assert [a["state"] for a in alerts] == ["rolled_back"]  # an operator's rollback notifies too
    reasons = list(rollout.history.order_by("history_id").values_list("state", "history_change_reason"))
    assert reasons[0] == ("draft", "created")
    assert ("running", "start: go") in reasons and reasons[-1][0] == "rolled_back"


def test_bad_stages_or_gates_are_refused_naming_the_field(errors):
    Flag.objects.create(name="beta_feed", percent=0)
    with pytest.raises(InvalidInput) as info:
        rollout_create(
            name="x", flag="beta_feed", stages=[25, 5], gates=[{"metric": "test.nope", "op": "<", "threshold": 1}]
        )
    assert set(info.value.fields) == {"stages", "gates"}
    assert "unknown metric 'test.nope'" in info.value.fields["gates"][0]
    with pytest.raises(InvalidInput) as info:
        rollout_create(name="x", flag="missing", gates=[])
    assert "flag" in info.value.fields


# -- end to end: the controller against the database, a few simulated rollouts -------------


def _run(errors: FakeComparative, *, rate_t: float, ticks: int, seed: int) -> int | None:
    """One rollout at 5 % of 2,000 requests a tick, decided by the controller every tick;
    the tick it rolled back at, or None."""
    rng = np.random.default_rng(seed)
    n_t, n_c = rng.poisson(100, ticks), rng.poisson(1900, ticks)
    cum = np.stack(
        [n_t.cumsum(), rng.binomial(n_t, rate_t).cumsum(), n_c.cumsum(), rng.binomial(n_c, 0.02).cumsum()], axis=1
    )
    Rollout.objects.all().delete()
    _rollout(min_dwell_seconds=10**6, min_sample=10**6)  # stays at 5 %, looked at every tick
    for k in range(ticks):
        t_n, t_e, c_n, c_e = (int(x) for x in cum[k])
        errors.set(t=(t_n, t_e), c=(c_n, c_e))
        if _tick(k + 1).decision == DecisionKind.ROLLBACK:
            return k + 1
    return None


def test_end_to_end_a_a_rollouts_do_not_roll_back_and_2x_regressions_do(errors, alerts):
    a_a = [_run(errors, rate_t=0.02, ticks=30, seed=100 + i) for i in range(8)]
    regressions = [_run(errors, rate_t=0.04, ticks=40, seed=200 + i) for i in range(8)]
    print(f"\nend to end: A/A rolled back {sum(r is not None for r in a_a)}/8; 2x rolled back at ticks {regressions}")
    assert sum(r is not None for r in a_a) <= 1
    assert all(r is not None and r <= 40 for r in regressions)
    assert sum(a["state"] == "rolled_back" for a in alerts) == sum(r is not None for r in a_a + regressions)


def test_a_flag_has_one_live_rollout_at_a_time(errors):
    first = _rollout()
    second = rollout_create(name="beta-feed-2", flag="beta_feed", gates=[])
    with pytest.raises(Conflict, match="already has a live rollout"):
        rollout_start(rollout_id=second.pk)
    rollout_rollback(rollout_id=first.pk)
    rollout_start(rollout_id=second.pk)
    second.refresh_from_db()
    assert second.state == RolloutState.RUNNING


def test_prune_drops_old_holds_and_finished_stages_exposures_only(errors):
    from datetime import timedelta

    from flags.rollouts.services import rollouts_prune

    rollout = _rollout()
    errors.set(**GOOD)
    for n in range(1, 4):
        _tick(n)  # holds (dwell)
    old_epoch = rollout.epoch
    RolloutExposure.objects.bulk_create(
        RolloutExposure(rollout=rollout, epoch=old_epoch, unit=f"u{i}", treatment=False, percent=5) for i in range(5)
    )
    RolloutExposure.objects.update(first_seen=T0)
    assert rollouts_prune(keep_days=30, now=T0 + timedelta(days=31)) == {"holds": 3, "exposures": 0}  # live stage
    rollout_advance(rollout_id=rollout.pk, now=at(20))
    assert rollouts_prune(keep_days=30, now=T0 + timedelta(days=31)) == {"holds": 0, "exposures": 5}
    kinds = set(rollout.decisions.values_list("decision", flat=True))
    assert kinds == {"start", "advance"}


def test_safe_mode_holds_a_rollout_whose_flag_it_forces(errors):
    from flags.services import switch_set

    rollout = _rollout()
    Flag.objects.filter(name="beta_feed").update(safe_value=False)
    switch_set(SAFE_MODE, True, reason="incident")
    errors.set(**GOOD)
    result = _tick(11)
    assert result.decision == DecisionKind.HOLD and result.reason.startswith("safe mode is on")
    switch_set(SAFE_MODE, False, reason="over")
    assert _tick(12).decision == DecisionKind.ADVANCE
    rollout.refresh_from_db()
    assert rollout.stage_index == 1


def test_a_last_stage_of_100_percent_serves_everyone_and_completes(errors):
    Flag.objects.create(name="beta_feed", percent=Decimal(0))
    rollout = rollout_create(name="full", flag="beta_feed", stages=[5, 100], gates=[{"metric": "test.errors"}])
    rollout_start(rollout_id=rollout.pk, now=T0)
    rollout_advance(rollout_id=rollout.pk, now=at(1))
    assert _flag_percent() == 100
    assert all(flag_enabled("beta_feed", unit=f"u{i}") for i in range(500))
    errors.set(t=(20000, 400), c=(0, 0))  # no control cohort is left at 100 %
    rollout.refresh_from_db()
    rollout.min_dwell_seconds = 0
    rollout.save()
    assert _tick(3).decision == DecisionKind.COMPLETE
