"""The health report shared by ``/api/health`` and ``doctor``."""

from __future__ import annotations

from typing import Any

from ops.invariants import InvariantOutcome, invariant_evaluate, invariants_all, state_worst
from ops.models import InvariantState
from ops.selectors import (
    broker_ping,
    database_ping,
    invariant_results_latest,
    queue_depths,
    workers_live,
    workers_stale,
)


def invariant_outcomes(*, live: bool) -> list[InvariantOutcome]:
    """Every invariant's state: stored results from the last minutes, or a live run of the
    ones that have none (or of all of them when ``live``)."""
    stored = {} if live else {o.name: o for o in invariant_results_latest()}
    return [stored.get(inv.name) or invariant_evaluate(inv) for inv in invariants_all()]


def health_report(*, live: bool = False) -> dict[str, Any]:
    from flags.services import safe_mode_active

    database = database_ping()
    broker = broker_ping()
    report: dict[str, Any] = {"database": database, "broker": broker}
    outcomes: list[InvariantOutcome] = []
    if database["ok"]:
        report["queues"] = queue_depths()
        outcomes = invariant_outcomes(live=live)
        report["workers"] = {"live": workers_live().count(), "stale": workers_stale().count()}
        report["safe_mode"] = safe_mode_active()
    report["invariants"] = [
        {"name": o.name, "app": o.app, "state": o.state, "value": o.value, "detail": o.detail} for o in outcomes
    ]
    worst = state_worst(o.state for o in outcomes)
    if not database["ok"] or not broker["ok"] or worst == InvariantState.CRITICAL:
        report["status"] = "unhealthy"
    elif worst != InvariantState.OK:
        report["status"] = "degraded"
    else:
        report["status"] = "ok"
    return report
