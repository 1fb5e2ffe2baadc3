"""The rollouts' families on /metrics (ops.prometheus), read from the database at each scrape.

- ``matchplatform_rollout_percent{rollout, flag}``: the percentage the rollout's flag serves
  now (the flag's own percentage, what evaluation uses: 0 after a rollback, whatever the
  stage was); ``matchplatform_rollout_stage_percent``: the percentage of the rollout's stage
  (0 for a draft), and ``matchplatform_rollout_stage``: the stage's index;
- ``matchplatform_rollout_state{rollout, flag, state}``: 1 for the current state;
- ``matchplatform_rollout_decisions_total{rollout, decision}``: decisions recorded, holds
  excluded. Every decision but a hold is kept for good, so the counter only rises; holds
  older than ``ROLLOUTS_KEEP_DAYS`` are pruned (``rollouts_prune``), and counting them would
  make the counter fall, which Prometheus reads as a reset. Holds are the gauge
  ``matchplatform_rollout_holding{rollout, flag}``: 1 when the rollout's latest decision is
  a hold.
"""

from __future__ import annotations

from django.db.models import Count, OuterRef, Subquery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from flags.rollouts.models import Rollout, RolloutDecision
from flags.rollouts.states import DecisionKind, RolloutState

# Decisions the counter counts: those never pruned.
COUNTED = tuple(kind for kind in DecisionKind.values if kind != DecisionKind.HOLD)


def _decision_counts() -> dict[tuple[int, str], int]:
    rows = (
        RolloutDecision.objects.filter(decision__in=COUNTED)
        .values_list("rollout_id", "decision")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(rollout_id, decision): n for rollout_id, decision, n in rows}


def rollout_metrics() -> list[Metric]:
    labels = ["rollout", "flag"]
    stage = GaugeMetricFamily("matchplatform_rollout_stage", "Each rollout's current stage (0-based).", labels=labels)
    percent = GaugeMetricFamily(
        "matchplatform_rollout_percent",
        "The percentage each rollout's flag serves now (the flag's own: 0 after a rollback).",
        labels=labels,
    )
    stage_percent = GaugeMetricFamily(
        "matchplatform_rollout_stage_percent",
        "The percentage of each rollout's current stage (0 for a draft); the flag may serve less.",
        labels=labels,
    )
    state = GaugeMetricFamily(
        "matchplatform_rollout_state",
        "1 for each rollout's current state, 0 for the others.",
        labels=[*labels, "state"],
    )
    holding = GaugeMetricFamily(
        "matchplatform_rollout_holding",
        "1 when each rollout's latest decision is a hold (holds are not in the decisions counter).",
        labels=labels,
    )
    decisions = CounterMetricFamily(
        "matchplatform_rollout_decisions",
        "Decisions recorded per rollout (the controller's and operators'), holds excluded: old holds "
        "are pruned, and the counter must never fall. See matchplatform_rollout_holding.",
        labels=["rollout", "decision"],
    )
    counts = _decision_counts()
    latest = RolloutDecision.objects.filter(rollout=OuterRef("pk")).order_by("-decided_at", "-id").values("decision")
    rows = (
        Rollout.objects.annotate(latest_decision=Subquery(latest[:1]))
        .order_by("name")
        .values_list("pk", "name", "flag__name", "flag__percent", "stage_index", "stages", "state", "latest_decision")
    )
    for pk, name, flag, flag_percent, stage_index, stages, current, last in rows:
        stage.add_metric([name, flag], stage_index)
        percent.add_metric([name, flag], float(flag_percent or 0))
        try:
            value = float(stages[min(stage_index, len(stages) - 1)]) if current != RolloutState.DRAFT else 0.0
        except (TypeError, ValueError, IndexError):
            value = 0.0
        stage_percent.add_metric([name, flag], value)
        for choice in RolloutState.values:
            state.add_metric([name, flag, choice], 1.0 if choice == current else 0.0)
        holding.add_metric([name, flag], 1.0 if last == DecisionKind.HOLD else 0.0)
        for kind in COUNTED:
            decisions.add_metric([name, kind], counts.get((pk, kind), 0))
    return [stage, percent, stage_percent, state, holding, decisions]
