"""Every invariant as a rollout gate: ``invariant.<name>`` reads the state of its latest
stored result as a number (ok 0, warn 1, error 2, critical 3), so a rollout can hold on, or
roll back for, any runbook check: ``{"metric": "invariant.runs.stuck_runs", "op": "<=",
"threshold": 1}`` rolls back when it turns error or critical.

No result stored within the window, or a result that reads "not enough data", is no data:
the controller holds and never judges it."""

from __future__ import annotations

from flags.gates import GateMetric, GateReading, GateWindow, gate_metric_family_register
from ops.invariants import Invariant, invariants_all
from ops.models import InvariantResult, InvariantState

STATE_NUMBER: dict[str, float] = {
    InvariantState.OK: 0.0,
    InvariantState.WARN: 1.0,
    InvariantState.ERROR: 2.0,
    InvariantState.CRITICAL: 3.0,
}


def _compute(invariant: Invariant) -> GateMetric:
    def compute(window: GateWindow) -> GateReading:
        latest = (
            InvariantResult.objects.filter(
                name=invariant.name, checked_at__gte=window.since, checked_at__lte=window.until
            )
            .order_by("-checked_at", "-id")
            .values("state", "detail")
            .first()
        )
        if latest is None:
            return GateReading(value=None, detail="no stored result in the window")
        value = STATE_NUMBER.get(latest["state"])
        if value is None:  # not enough data
            return GateReading(value=None, detail=latest["detail"] or latest["state"])
        return GateReading(value=value, sample=1, detail=f"{latest['state']}: {latest['detail']}")

    return GateMetric(
        name=f"invariant.{invariant.name}",
        app=invariant.app,
        description=f"The state of the invariant {invariant.name} (ok 0, warn 1, error 2, critical 3)",
        compute=compute,
        unit="state",
    )


def invariant_gate_metrics() -> list[GateMetric]:
    return [_compute(invariant) for invariant in invariants_all()]


gate_metric_family_register(invariant_gate_metrics)
