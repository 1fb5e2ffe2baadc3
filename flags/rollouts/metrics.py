"""The rollouts' families on /metrics (ops.prometheus), read from the database at each scrape."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from flags.rollouts.models import Rollout
from flags.rollouts.selectors import rollout_decision_counts
from flags.rollouts.states import DecisionKind, RolloutState


def rollout_metrics() -> list[Metric]:
    labels = ["rollout", "flag"]
    stage = GaugeMetricFamily("matchplatform_rollout_stage", "Each rollout's current stage (0-based).", labels=labels)
    percent = GaugeMetricFamily(
        "matchplatform_rollout_percent", "Each rollout's current stage percentage.", labels=labels
    )
    state = GaugeMetricFamily(
        "matchplatform_rollout_state",
        "1 for each rollout's current state, 0 for the others.",
        labels=[*labels, "state"],
    )
    decisions = CounterMetricFamily(
        "matchplatform_rollout_decisions",
        "Decisions recorded per rollout (the controller's and operators').",
        labels=["rollout", "decision"],
    )
    counts = rollout_decision_counts()
    for pk, name, flag, stage_index, stages, current in Rollout.objects.order_by("name").values_list(
        "pk", "name", "flag__name", "stage_index", "stages", "state"
    ):
        stage.add_metric([name, flag], stage_index)
        try:
            value = float(stages[min(stage_index, len(stages) - 1)]) if current != RolloutState.DRAFT else 0.0
        except (TypeError, ValueError, IndexError):
            value = 0.0
        percent.add_metric([name, flag], value)
        for choice in RolloutState.values:
            state.add_metric([name, flag, choice], 1.0 if choice == current else 0.0)
        for kind in DecisionKind.values:
            decisions.add_metric([name, kind], counts.get((pk, kind), 0))
    return [stage, percent, state, decisions]
