"""Writes of rollouts: an operator's actions (create, start, pause, resume, advance, roll back)
and the stage moves the controller shares with them.

Each action locks the rollout row (the controller's tick holds the same lock), checks the
move against ``states.TRANSITIONS``, moves the flag's percentage through
``flags.services.flag_percent_set`` (its own history row and stamp bump), saves the rollout
(a history row with who and why) and records the decision, all in one transaction. Every
write bumps the snapshot stamp, so each process's running-rollouts section follows.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from flags.gates import gate_metrics_all
from flags.models import Flag
from flags.names import SAFE_MODE
from flags.rollouts.decide import GateSpec, GateSpecError, gates_parse, stages_parse
from flags.rollouts.models import Rollout, RolloutDecision
from flags.rollouts.states import LIVE_STATES, DecisionKind, RollbackAction, RolloutState, rollout_transition
from flags.snapshot import stamp_bump
from matchplatform.exceptions import Conflict, InvalidInput, NotFound

logger = logging.getLogger(__name__)

REASON_MAX = 100  # django-simple-history's history_change_reason


def gate_specs(gates: Any) -> list[GateSpec]:
    """The rollout's gates, checked against the registered metrics (GateSpecError if not)."""
    return gates_parse(gates, metrics={m.name: m for m in gate_metrics_all()})


def rollout_config_errors(*, stages: Any, gates: Any, alpha: Any = 0.05) -> dict[str, list[str]]:
    """What is wrong with a rollout's stages, gates and alpha, by field (empty: nothing)."""
    errors: dict[str, list[str]] = {}
    try:
        stages_parse(stages)
    except GateSpecError as exc:
        errors["stages"] = [str(exc)]
    try:
        gate_specs(gates)
    except GateSpecError as exc:
        errors["gates"] = [str(exc)]
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        errors["alpha"] = ["alpha is a probability strictly between 0 and 1, e.g. 0.05."]
    return errors


_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")


def rollout_create(
    *,
    name: str,
    flag: str,
    stages: list[float] | None = None,
    gates: list[dict[str, Any]] | None = None,
    min_dwell_seconds: int = 600,
    min_sample: int = 1000,
    min_gate_sample: int = 100,
    breaches_to_rollback: int = 2,
    rollback_action: str = RollbackAction.PERCENT_ZERO,
    alpha: float = 0.05,
    actor: User | None = None,
    reason: str = "",
) -> Rollout:
    """A draft rollout of the flag named ``flag`` (InvalidInput naming the field if its
    stages, gates or alpha cannot be used)."""
    stages = [5, 25, 100] if stages is None else stages
    gates = [] if gates is None else gates
    errors = rollout_config_errors(stages=stages, gates=gates, alpha=alpha)
    if rollback_action not in RollbackAction.values:
        errors["rollback_action"] = [f"One of {', '.join(RollbackAction.values)}."]
    for field, value, low, high in (
        ("min_dwell_seconds", min_dwell_seconds, 0, 30 * 24 * 3600),
        ("min_sample", min_sample, 0, 2**31 - 1),
        ("min_gate_sample", min_gate_sample, 0, 2**31 - 1),
        ("breaches_to_rollback", breaches_to_rollback, 1, 100),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[field] = [f"A whole number from {low} to {high}."]
    if not isinstance(name, str) or not _SLUG.fullmatch(name):
        errors["name"] = ["A slug of 1 to 100 letters, digits, - or _ (it names the rollout in metrics and alerts)."]
    elif Rollout.objects.filter(name=name).exists():
        errors["name"] = [f"A rollout is already named {name!r}."]
    flag_row = Flag.objects.filter(name=flag).first()
    if flag_row is None:
        errors["flag"] = [f"No flag is named {flag!r}."]
    if errors:
        raise InvalidInput("The rollout is not valid.", fields=errors)
    with transaction.atomic():
        rollout = Rollout(
            name=name,
            flag=flag_row,
            stages=stages,
            gates=gates,
            min_dwell_seconds=min_dwell_seconds,
            min_sample=min_sample,
            min_gate_sample=min_gate_sample,
            breaches_to_rollback=breaches_to_rollback,
            rollback_action=rollback_action,
            alpha=alpha,
            created_by=actor,
        )
        try:
            with transaction.atomic():
                _save(rollout, reason=reason or "created", actor=actor)
        except IntegrityError:  # another create took the name between the check and here
            raise Conflict(f"A rollout is already named {name!r}.") from None
    return rollout


def rollout_locked(rollout_id: int) -> Rollout:
    """The rollout, locked for this transaction (waits for a controller's tick on it)."""
    rollout = Rollout.objects.select_for_update(of=("self",)).select_related("flag").filter(pk=rollout_id).first()
    if rollout is None:
        raise NotFound(f"No rollout {rollout_id}.")
    return rollout


def _save(rollout: Rollout, *, reason: str, actor: User | None) -> None:
    rollout._change_reason = (reason or None) and reason[:REASON_MAX]  # type: ignore[attr-defined]
    if actor is not None:
        rollout._history_user = actor  # type: ignore[attr-defined]
    rollout.save()
    stamp_bump()  # the running-rollouts section of every process's snapshot


def decision_record(
    rollout: Rollout,
    *,
    decision: str,
    reason: str,
    now: datetime,
    figures: dict[str, Any] | None = None,
    actor: User | None = None,
    tick_key: str | None = None,
    percent: float | None = None,
) -> RolloutDecision:
    if tick_key is None:
        import uuid

        tick_key = f"manual:{rollout.pk}:{uuid.uuid4().hex}"
    return RolloutDecision.objects.create(
        rollout=rollout,
        tick_key=tick_key,
        decided_at=now,
        decision=decision,
        reason=reason,
        figures=figures or {},
        stage_index=rollout.stage_index,
        percent=rollout.percent if percent is None else percent,
        epoch=rollout.epoch,
        actor=actor,
    )


def _percent_apply(rollout: Rollout, percent: float, *, reason: str, actor: User | None) -> None:
    from flags.services import flag_percent_set

    flag_percent_set(rollout.flag.name, Decimal(str(percent)), reason=reason[:REASON_MAX], actor=actor)


def stage_enter(
    rollout: Rollout,
    *,
    index: int,
    now: datetime,
    decision: str,
    reason: str,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    tick_key: str | None = None,
) -> RolloutDecision:
    """Start stage ``index`` (a new epoch: a fresh window for gates and exposures), set the
    flag to its percentage, and record the decision. The row must be locked."""
    stages = stages_parse(rollout.stages)
    rollout.stage_index = index
    rollout.state = RolloutState.RUNNING
    rollout.epoch += 1
    rollout.stage_started_at = now
    rollout.breach_streaks = {}
    rollout.alert = ""
    if tick_key is not None:  # the controller's move is its tick; an operator's is not
        rollout.last_tick_at = now
    _percent_apply(rollout, stages[index], reason=f"rollout {rollout.name}: {decision}", actor=actor)
    _save(rollout, reason=f"{decision}: {reason}", actor=actor)
    return decision_record(
        rollout, decision=decision, reason=reason, now=now, figures=figures, actor=actor, tick_key=tick_key
    )


def rollback_apply(
    rollout: Rollout,
    *,
    now: datetime,
    reason: str,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    tick_key: str | None = None,
) -> RolloutDecision:
    """Roll back: the flag to 0 % (and, when the rollout says so, safe mode on everywhere as
    well), the state to rolled back, the decision recorded, and a notification (always). The
    row must be locked."""
    from flags.services import switch_set

    rollout.state = rollout_transition(state=rollout.state, action="rollback")
    # The treatment always ends: safe mode alone would leave a flag that declares no safe
    # value at its percentage.
    _percent_apply(rollout, 0, reason=f"rollout {rollout.name}: rollback", actor=actor)
    percent = 0.0
    if rollout.rollback_action == RollbackAction.SAFE_MODE:
        switch_set(SAFE_MODE, True, reason=f"rollout {rollout.name} rolled back"[:REASON_MAX], actor=actor)
    rollout.breach_streaks = {}
    rollout.alert = ""
    rollout.last_tick_at = now
    _save(rollout, reason=f"rollback: {reason}", actor=actor)
    decision = decision_record(
        rollout,
        decision=DecisionKind.ROLLBACK,
        reason=reason,
        now=now,
        figures=figures,
        actor=actor,
        tick_key=tick_key,
        percent=percent,
    )
    rollout_alert(
        rollout,
        state="rolled_back",
        title=f"Rollout {rollout.name} rolled back",
        text=reason,
        fields={
            "flag": rollout.flag.name,
            "stage": rollout.stage_index,
            "percent": percent,
            "action": rollout.rollback_action,
            "by": actor.get_username() if actor is not None else "controller",
        },
    )
    return decision


def complete_apply(
    rollout: Rollout,
    *,
    now: datetime,
    reason: str,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    tick_key: str | None = None,
) -> RolloutDecision:
    rollout.state = rollout_transition(state=rollout.state, action="complete")
    rollout.alert = ""
    rollout.last_tick_at = now
    _save(rollout, reason=f"complete: {reason}", actor=actor)
    return decision_record(
        rollout, decision=DecisionKind.COMPLETE, reason=reason, now=now, figures=figures, actor=actor, tick_key=tick_key
    )


def pause_apply(
    rollout: Rollout,
    *,
    now: datetime,
    reason: str,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    tick_key: str | None = None,
) -> RolloutDecision:
    """Pause (the flag keeps its percentage) and record it. The row must be locked."""
    rollout.state = rollout_transition(state=rollout.state, action="pause")
    rollout.last_tick_at = now
    _save(rollout, reason=f"pause: {reason}", actor=actor)
    return decision_record(
        rollout, decision=DecisionKind.PAUSE, reason=reason, now=now, figures=figures, actor=actor, tick_key=tick_key
    )


def rollout_alert(rollout: Rollout, *, state: str, title: str, text: str, fields: dict[str, Any]) -> None:
    """Tell someone (ops.notify; sent once the transaction commits, never raises)."""
    try:
        from ops.notify import alert_send
    except ImportError:  # notifications not installed: the log is all there is
        logger.warning("rollout %s: %s (%s): %s", rollout.name, title, state, text)
        return
    alert_send(key=f"rollout:{rollout.pk}", state=state, title=title, text=text, fields=fields)


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def rollout_start(
    *, rollout_id: int, actor: User | None = None, reason: str = "", now: datetime | None = None
) -> Rollout:
    """Start a draft at its first stage, or restart a rolled-back one there: the same units
    as before in each stage (buckets are sticky)."""
    with transaction.atomic():
        rollout = rollout_locked(rollout_id)
        action = "restart" if rollout.state == RolloutState.ROLLED_BACK else "start"
        rollout_transition(state=rollout.state, action=action)
        errors = rollout_config_errors(stages=rollout.stages, gates=rollout.gates, alpha=rollout.alpha)
        if errors:
            raise InvalidInput("The rollout cannot start as configured.", fields=errors)
        if rollout.flag.everyone is not None:
            forced = "on" if rollout.flag.everyone else "off"
            raise Conflict(
                f"Flag {rollout.flag.name} is forced {forced} for everyone: a percentage would change nothing."
                " Set its Everyone rule back to unknown first."
            )
        live = Rollout.objects.filter(flag_id=rollout.flag_id, state__in=LIVE_STATES).exclude(pk=rollout.pk).first()
        if live is not None:
            raise Conflict(f"Flag {rollout.flag.name} already has a live rollout ({live.name}); finish it first.")
        words = reason or ("restarted" if action == "restart" else "started")
        stage_enter(rollout, index=0, now=_now(now), decision=DecisionKind.START, reason=words, actor=actor)
    return rollout


def rollout_pause(
    *, rollout_id: int, actor: User | None = None, reason: str = "", now: datetime | None = None
) -> Rollout:
    """Stop the controller (the flag keeps its percentage)."""
    with transaction.atomic():
        rollout = rollout_locked(rollout_id)
        pause_apply(rollout, now=_now(now), reason=reason or "paused", actor=actor)
    return rollout


def rollout_resume(
    *, rollout_id: int, actor: User | None = None, reason: str = "", now: datetime | None = None
) -> Rollout:
    """Run again from the stage it was paused in (a fresh window: dwell starts again)."""
    with transaction.atomic():
        rollout = rollout_locked(rollout_id)
        rollout_transition(state=rollout.state, action="resume")
        stage_enter(
            rollout,
            index=rollout.stage_index,
            now=_now(now),
            decision=DecisionKind.RESUME,
            reason=reason or "resumed",
            actor=actor,
        )
    return rollout


def rollout_advance(
    *, rollout_id: int, actor: User | None = None, reason: str = "", now: datetime | None = None
) -> Rollout:
    """An operator's advance: the next stage now (or completed, after the last)."""
    with transaction.atomic():
        rollout = rollout_locked(rollout_id)
        rollout_transition(state=rollout.state, action="advance")
        stages = stages_parse(rollout.stages)
        if rollout.stage_index >= len(stages) - 1:
            complete_apply(rollout, now=_now(now), reason=reason or "completed by hand", actor=actor)
        else:
            stage_enter(
                rollout,
                index=rollout.stage_index + 1,
                now=_now(now),
                decision=DecisionKind.ADVANCE,
                reason=reason or f"advanced by hand to {stages[rollout.stage_index + 1]:g} %",
                actor=actor,
            )
    return rollout


def rollout_rollback(
    *, rollout_id: int, actor: User | None = None, reason: str = "", now: datetime | None = None
) -> Rollout:
    """An operator's rollback (one click): as the controller's, and it notifies too."""
    with transaction.atomic():
        rollout = rollout_locked(rollout_id)
        rollback_apply(rollout, now=_now(now), reason=reason or "rolled back by hand", actor=actor)
    return rollout


def rollouts_prune(*, keep_days: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Drop what only the controller's next ticks needed: holds older than ``keep_days``
    (``ROLLOUTS_KEEP_DAYS``, 30; every other decision stays: it is the rollout's story) and
    the exposures of stages that are over (not the running or paused stage of a rollout)."""
    from datetime import timedelta

    from django.conf import settings
    from django.db.models import F, Q

    from flags.rollouts.models import RolloutExposure

    days = keep_days if keep_days is not None else int(getattr(settings, "ROLLOUTS_KEEP_DAYS", 30))
    cutoff = _now(now) - timedelta(days=days)
    with transaction.atomic():
        holds, _ = RolloutDecision.objects.filter(decision=DecisionKind.HOLD, decided_at__lt=cutoff).delete()
        current = Q(rollout__state__in=LIVE_STATES, epoch=F("rollout__epoch"))
        exposures, _ = RolloutExposure.objects.filter(first_seen__lt=cutoff).exclude(current).delete()
    return {"holds": holds, "exposures": exposures}
