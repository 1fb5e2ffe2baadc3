"""Staged rollouts: a flag's percentage raised stage by stage by a controller that reads
gates, and every decision it (or an operator) made, with its figures.

The rows are the truth the controller locks: a rollout row is locked (``SELECT ... FOR
UPDATE SKIP LOCKED``) for the whole of its tick, and a decision's ``tick_key`` is unique, so
two controllers at once record one decision per rollout per tick.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from simple_history.models import HistoricalRecords

from flags.rollouts.states import DecisionKind, RollbackAction, RolloutState


def stages_default() -> list[int]:
    return [5, 25, 100]


def gates_default() -> list[dict[str, object]]:
    return []


class Rollout(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.SlugField(max_length=100, unique=True, help_text="Names the rollout in metrics and alerts.")
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rollouts")
    stages = models.JSONField(default=stages_default, help_text="Percentages, increasing, e.g. [5, 25, 100].")
    stage_index = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=12, choices=RolloutState.choices, default=RolloutState.DRAFT)
    min_dwell_seconds = models.PositiveIntegerField(default=600, help_text="Least time in each stage.")
    min_sample = models.PositiveIntegerField(
        default=1000, help_text="Least treatment sample (requests, or units) in each stage before it advances."
    )
    min_gate_sample = models.PositiveIntegerField(
        default=100, help_text="Least window size for a gate to be judged at all (pass or breach)."
    )
    breaches_to_rollback = models.PositiveSmallIntegerField(
        default=2, help_text="Consecutive ticks a gate must breach before the rollout rolls back."
    )
    rollback_action = models.CharField(
        max_length=12, choices=RollbackAction.choices, default=RollbackAction.PERCENT_ZERO
    )
    gates = models.JSONField(
        default=gates_default,
        blank=True,
        help_text='[{"metric": "...", "op": "<=", "threshold": 1.0}] or [{"metric": "...", "max_lift": 0.1}].',
    )
    alpha = models.FloatField(default=0.05, help_text="False-rollback rate, shared among the comparative gates.")
    # Bumped whenever a stage starts (start, advance, resume, restart): exposures and gate
    # windows belong to one epoch, and a tick's key names it.
    epoch = models.PositiveIntegerField(default=0)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    # The controller's memory between ticks (not audited: it changes every tick).
    breach_streaks = models.JSONField(default=dict, blank=True)
    alert = models.CharField(max_length=20, blank=True, default="", help_text="The hold condition alerted on.")
    last_tick_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    history = HistoricalRecords(excluded_fields=["breach_streaks", "alert", "last_tick_at"])

    class Meta:
        constraints = [
            # The flag's percentage belongs to one live rollout at a time.
            models.UniqueConstraint(
                fields=["flag"],
                condition=Q(state__in=[RolloutState.RUNNING, RolloutState.PAUSED]),
                name="flags_rollout_one_live_per_flag",
            ),
            models.CheckConstraint(condition=Q(alpha__gt=0) & Q(alpha__lt=1), name="flags_rollout_alpha_in_0_1"),
            models.CheckConstraint(condition=Q(breaches_to_rollback__gte=1), name="flags_rollout_breaches_positive"),
            models.CheckConstraint(
                condition=Q(state=RolloutState.DRAFT) | Q(stage_started_at__isnull=False),
                name="flags_rollout_started_has_stage_start",
            ),
        ]
        indexes = [models.Index(fields=["id"], name="flags_rollout_running", condition=Q(state="running"))]

    def __str__(self) -> str:
        return self.name

    @property
    def percent(self) -> float:
        stages = self.stages or []
        if not stages:
            return 0.0
        return float(stages[min(self.stage_index, len(stages) - 1)])


class RolloutDecision(models.Model):
    """One decision: a controller's tick (``tick_key`` = rollout, epoch and tick slot, unique,
    so a second controller on the same tick cannot record it again) or an operator's action."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="decisions")
    tick_key = models.CharField(max_length=120, unique=True)
    decided_at = models.DateTimeField()
    decision = models.CharField(max_length=10, choices=DecisionKind.choices)
    reason = models.TextField()
    figures = models.JSONField(default=dict, blank=True)
    stage_index = models.PositiveSmallIntegerField()
    percent = models.FloatField(help_text="The flag's percentage after the decision.")
    epoch = models.PositiveIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who decided (empty: the controller).",
    )

    class Meta:
        indexes = [models.Index(fields=["rollout", "-decided_at"], name="flags_rollout_decisions")]
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.rollout_id} {self.decision} @ {self.decided_at:%Y-%m-%d %H:%M:%S}"


class RolloutExposure(models.Model):
    """A unit seen in a rollout's stage (epoch), once, with its cohort: what the sample ratio
    mismatch check counts. Written in batches (ON CONFLICT DO NOTHING) off the request path;
    staff and known bots are never recorded."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="exposures")
    epoch = models.PositiveIntegerField()
    unit = models.CharField(max_length=64)
    treatment = models.BooleanField()
    # The percentage the unit was assigned under: the probability of its assignment.
    percent = models.FloatField()
    first_seen = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rollout", "epoch", "unit"], name="flags_rollout_exposure_once"),
        ]

    def __str__(self) -> str:
        return f"{self.rollout_id}/{self.epoch}/{self.unit}"
