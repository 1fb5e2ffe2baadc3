"""Reads of rollouts: what the controller, the admin, the snapshot and /metrics look at."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from flags.rollouts.models import Rollout, RolloutDecision, RolloutExposure
from flags.rollouts.states import DecisionKind, RolloutState
from matchplatform.exceptions import NotFound


@dataclass(frozen=True, slots=True)
class RunningRollout:
    """A running rollout as the in-process snapshot carries it (no model instance)."""

    id: int
    name: str
    flag: str
    epoch: int


def rollouts_running() -> QuerySet[Rollout]:
    return Rollout.objects.filter(state=RolloutState.RUNNING).select_related("flag").order_by("id")


def rollouts_running_ids() -> list[int]:
    return list(Rollout.objects.filter(state=RolloutState.RUNNING).order_by("id").values_list("pk", flat=True))


def rollouts_running_load() -> tuple[RunningRollout, ...]:
    """The snapshot section: every running rollout's id, name, flag and epoch."""
    return tuple(
        RunningRollout(id=pk, name=name, flag=flag, epoch=epoch)
        for pk, name, flag, epoch in rollouts_running().values_list("pk", "name", "flag__name", "epoch")
    )


def rollout_exposure_counts(*, rollout_id: int, epoch: int) -> tuple[int, int]:
    """Units seen in the stage (epoch): (treatment, control)."""
    counts = RolloutExposure.objects.filter(rollout_id=rollout_id, epoch=epoch).aggregate(
        in_treatment=Count("id", filter=Q(treatment=True)), in_control=Count("id", filter=Q(treatment=False))
    )
    return int(counts["in_treatment"] or 0), int(counts["in_control"] or 0)


def rollout_decisions(*, rollout_id: int, limit: int = 100) -> QuerySet[RolloutDecision]:
    """The timeline, newest first."""
    return (
        RolloutDecision.objects.filter(rollout_id=rollout_id)
        .select_related("actor")
        .order_by("-decided_at", "-id")[:limit]
    )


def rollout_timeline(*, rollout_id: int, holds: int = 20, others: int = 200) -> list[RolloutDecision]:
    """What an operator reads, newest first: every start, advance, pause, rollback and
    completion (up to ``others``) and only the latest ``holds`` holds (one every tick would
    bury the rest)."""
    base = RolloutDecision.objects.filter(rollout_id=rollout_id).select_related("actor").order_by("-decided_at", "-id")
    rows = [*base.filter(decision=DecisionKind.HOLD)[:holds], *base.exclude(decision=DecisionKind.HOLD)[:others]]
    return sorted(rows, key=lambda d: (d.decided_at, d.pk), reverse=True)


def rollout_decision_counts() -> dict[tuple[int, str], int]:
    """How many decisions of each kind each rollout has recorded."""
    rows = RolloutDecision.objects.values_list("rollout_id", "decision").annotate(n=Count("id")).order_by()
    return {(rollout_id, decision): n for rollout_id, decision, n in rows}


def rollout_get(*, name: str) -> Rollout:
    """The rollout named ``name`` (NotFound)."""
    rollout = Rollout.objects.select_related("flag").filter(name=name).first()
    if rollout is None:
        raise NotFound(f"No rollout is named {name!r}.")
    return rollout
