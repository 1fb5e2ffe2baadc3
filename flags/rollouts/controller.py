"""The rollout controller: beat runs ``rollouts_tick`` every 30 s (task ``flags.rollouts_tick``).

For each running rollout, in its own transaction:

1. lock the row with ``SELECT ... FOR UPDATE SKIP LOCKED`` (a second controller on the same
   rollout skips it instead of waiting) and stop if this tick's decision already exists:
   its ``tick_key`` (rollout and tick slot of ``ROLLOUTS_TICK_SECONDS``; not the epoch,
   which an advance changes) is unique, so two controllers at once, or one run twice,
   decide once;
2. pause if the flag's percentage is no longer the stage's (someone set it by hand: the
   controller does not fight an operator);
3. read every gate's metric over the stage's window (each in a savepoint: a metric that
   raises, even a failed query, is a "failed computation", never a failed tick) and the
   stage's exposure counts;
4. decide (``decide.tick_decide``: roll back, hold, advance or complete, with a reason and
   the figures), apply it, record it, and alert on a hold that needs a person (a sample
   ratio mismatch, a failed metric, no data) once when it starts and once when it clears.

A rollout whose tick fails anyway is logged and left for the next tick; the others go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from flags.gates import GateReading, GateWindow, gate_metric_get
from flags.rollouts.decide import GateSpecError, Observed, Policy, Verdict, stages_parse, tick_decide
from flags.rollouts.models import Rollout, RolloutDecision
from flags.rollouts.selectors import rollout_exposure_counts, rollouts_running_ids
from flags.rollouts.services import (
    complete_apply,
    decision_record,
    gate_specs,
    pause_apply,
    rollback_apply,
    rollout_alert,
    stage_enter,
)
from flags.rollouts.states import DecisionKind, RolloutState

logger = logging.getLogger(__name__)

ALERT_STATES = {"srm": "warn", "no_data": "warn", "gate_error": "error"}
ALERT_TITLES = {
    "srm": "sample ratio mismatch",
    "no_data": "no data",
    "gate_error": "a gate metric failed",
}


def tick_seconds() -> float:
    return float(getattr(settings, "ROLLOUTS_TICK_SECONDS", 30.0))


def tick_key(*, rollout: Rollout, now: datetime) -> str:
    slot = int(now.timestamp() // tick_seconds())
    return f"tick:{rollout.pk}:{slot}"


@dataclass(frozen=True)
class TickResult:
    rollout: str
    decision: str
    reason: str


def rollouts_tick(now: datetime | None = None) -> list[TickResult]:
    """One tick of every running rollout (see the module docstring). Never raises for one
    rollout's failure; returns the decisions this call recorded."""
    now = now or timezone.now()
    results: list[TickResult] = []
    for rollout_id in rollouts_running_ids():
        try:
            result = rollout_tick(rollout_id=rollout_id, now=now)
        except IntegrityError:
            # Another controller recorded this tick between our check and our insert (its
            # lock was released by a commit): the tick is decided, once.
            logger.info("rollout %s: tick already decided by another controller", rollout_id)
            continue
        except Exception:
            logger.exception("rollout %s: tick failed; trying again next tick", rollout_id)
            continue
        if result is not None:
            results.append(result)
    return results


def _flag_percent_matches(rollout: Rollout) -> bool:
    current = rollout.flag.percent
    expected = Decimal(str(rollout.percent))
    return current is not None and Decimal(current) == expected


def _safe_mode_forces(rollout: Rollout) -> bool:
    from flags.services import flag_safe_value, safe_mode_active

    return flag_safe_value(rollout.flag.name, rollout.flag) is not None and safe_mode_active()


def _gates_read(rollout: Rollout, *, specs: list, now: datetime) -> dict[str, GateReading | BaseException]:
    window = GateWindow(flag=rollout.flag.name, since=rollout.stage_started_at or now, until=now)
    readings: dict[str, GateReading | BaseException] = {}
    for spec in specs:
        try:
            # A savepoint: a metric whose query fails must not poison the tick's transaction.
            with transaction.atomic():
                reading = gate_metric_get(spec.metric).compute(window)
            if not isinstance(reading, GateReading):
                raise TypeError(f"metric {spec.metric} returned {type(reading).__name__}, not a GateReading")
            readings[spec.key] = reading
        except Exception as exc:  # any failure is a failed computation: hold, never fail
            readings[spec.key] = exc
    return readings


def rollout_tick(*, rollout_id: int, now: datetime) -> TickResult | None:
    """Decide one running rollout's tick; None when another controller holds it, the tick
    is already decided, or it is no longer running."""
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("flag")
            .filter(pk=rollout_id, state=RolloutState.RUNNING)
            .first()
        )
        if rollout is None:
            return None
        key = tick_key(rollout=rollout, now=now)
        if RolloutDecision.objects.filter(tick_key=key).exists():
            return None
        # Two beats a few seconds apart on either side of a slot's edge would each decide on
        # nearly the same figures (one noisy window counted as two breaches): a tick closer
        # than half a period to the last one is not a tick.
        if rollout.last_tick_at is not None and now - rollout.last_tick_at < timedelta(seconds=tick_seconds() / 2):
            return None
        if not _flag_percent_matches(rollout):
            reason = (
                f"flag {rollout.flag.name} is at {rollout.flag.percent} %, not the stage's {rollout.percent:g} %: "
                "changed by hand, the controller stops until resumed"
            )
            figures = {"flag_percent": float(rollout.flag.percent or 0), "stage_percent": rollout.percent}
            pause_apply(rollout, now=now, reason=reason, figures=figures, tick_key=key)
            rollout_alert(
                rollout,
                state="paused",
                title=f"Rollout {rollout.name} paused",
                text=reason,
                fields={"flag": rollout.flag.name},
            )
            return TickResult(rollout=rollout.name, decision=DecisionKind.PAUSE, reason=reason)
        if _safe_mode_forces(rollout):
            # Safe mode serves the flag's safe value to everyone: both cohorts see the same
            # thing, so no figure says anything about the treatment.
            verdict = Verdict(
                decision=DecisionKind.HOLD,
                reason="safe mode is on and the flag declares a safe value: nothing to judge",
                figures={"safe_mode": True},
                streaks=dict(rollout.breach_streaks or {}),
                alert=rollout.alert,
            )
            _apply(rollout, verdict=verdict, now=now, key=key)
            return TickResult(rollout=rollout.name, decision=verdict.decision, reason=verdict.reason)
        verdict = _decide(rollout, now=now)
        _apply(rollout, verdict=verdict, now=now, key=key)
        return TickResult(rollout=rollout.name, decision=verdict.decision, reason=verdict.reason)


def _decide(rollout: Rollout, *, now: datetime) -> Verdict:
    try:
        specs = gate_specs(rollout.gates)
        stages = stages_parse(rollout.stages)
    except GateSpecError as exc:
        # A gate whose metric is no longer registered (its app is off, renamed): nothing
        # can be judged, and nothing is advanced.
        return Verdict(
            decision=DecisionKind.HOLD,
            reason=f"gates cannot be read: {exc}",
            figures={"error": str(exc)},
            streaks=dict(rollout.breach_streaks or {}),
            alert="gate_error",
        )
    policy = Policy(
        stages=stages,
        stage_index=rollout.stage_index,
        gates=specs,
        min_dwell_seconds=rollout.min_dwell_seconds,
        min_sample=rollout.min_sample,
        min_gate_sample=rollout.min_gate_sample,
        breaches_to_rollback=rollout.breaches_to_rollback,
        alpha=rollout.alpha,
    )
    started = rollout.stage_started_at or now
    try:
        with transaction.atomic():
            exposure = rollout_exposure_counts(rollout_id=rollout.pk, epoch=rollout.epoch)
    except Exception as exc:
        # The ratio check cannot run: a failed computation like any other (hold, alert).
        logger.exception("rollout %s: exposure counts failed", rollout.name)
        return Verdict(
            decision=DecisionKind.HOLD,
            reason=f"metric failed: exposure counts ({type(exc).__name__}: {exc})"[:500],
            figures={"error": f"{type(exc).__name__}: {exc}"[:300]},
            streaks=dict(rollout.breach_streaks or {}),
            alert="gate_error",
        )
    observed = Observed(
        readings=_gates_read(rollout, specs=specs, now=now),
        dwell_seconds=max((now - started).total_seconds(), 0.0),
        exposure=exposure if sum(exposure) > 0 else None,
    )
    return tick_decide(policy=policy, observed=observed, streaks=dict(rollout.breach_streaks or {}))


def _apply(rollout: Rollout, *, verdict: Verdict, now: datetime, key: str) -> None:
    previous_alert = rollout.alert
    if previous_alert and verdict.decision in (DecisionKind.ADVANCE, DecisionKind.COMPLETE):
        _alert_recovered(rollout, previous=previous_alert, text=verdict.reason)
    if verdict.decision == DecisionKind.ROLLBACK:
        rollback_apply(rollout, now=now, reason=verdict.reason, figures=verdict.figures, tick_key=key)
        return
    if verdict.decision == DecisionKind.COMPLETE:
        complete_apply(rollout, now=now, reason=verdict.reason, figures=verdict.figures, tick_key=key)
        return
    if verdict.decision == DecisionKind.ADVANCE:
        stage_enter(
            rollout,
            index=rollout.stage_index + 1,
            now=now,
            decision=DecisionKind.ADVANCE,
            reason=verdict.reason,
            figures=verdict.figures,
            tick_key=key,
        )
        return
    # Hold: the controller's memory moves on without an audit row (it changes every tick).
    Rollout.objects.filter(pk=rollout.pk).update(breach_streaks=verdict.streaks, alert=verdict.alert, last_tick_at=now)
    rollout.breach_streaks, rollout.alert, rollout.last_tick_at = verdict.streaks, verdict.alert, now
    decision_record(
        rollout, decision=DecisionKind.HOLD, reason=verdict.reason, now=now, figures=verdict.figures, tick_key=key
    )
    if verdict.alert and verdict.alert != previous_alert:
        rollout_alert(
            rollout,
            state=ALERT_STATES.get(verdict.alert, "warn"),
            title=f"Rollout {rollout.name} holds: {ALERT_TITLES.get(verdict.alert, verdict.alert)}",
            text=verdict.reason,
            fields={"flag": rollout.flag.name, "stage": rollout.stage_index, "percent": rollout.percent},
        )
    elif previous_alert and not verdict.alert:
        _alert_recovered(rollout, previous=previous_alert, text=verdict.reason)


def _alert_recovered(rollout: Rollout, *, previous: str, text: str) -> None:
    rollout_alert(
        rollout,
        state="recovered",
        title=f"Rollout {rollout.name}: {ALERT_TITLES.get(previous, previous)} cleared",
        text=text,
        fields={"flag": rollout.flag.name, "stage": rollout.stage_index, "percent": rollout.percent},
    )
