"""The health reports: readiness for load balancers, the full report for people and ``doctor``.

Three questions, three answers. *Live*: the process answers (no dependency is asked).
*Ready*: the database and the broker are reachable, so this node can serve; nothing a user
submits can change that answer. *Health*: every invariant, queue and worker, with a status
of ok / degraded / critical for people; only an unreachable database makes it fail.
"""

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

STATUS_OK = "ok"
STATUS_DEGRADED = "degraded"
STATUS_CRITICAL = "critical"


def invariant_outcomes(*, live: bool) -> list[InvariantOutcome]:
    """Every invariant's state: stored results from the last minutes, or a live run of the
    ones that have none (or of all of them when ``live``)."""
    stored = {} if live else {o.name: o for o in invariant_results_latest()}
    return [stored.get(inv.name) or invariant_evaluate(inv) for inv in invariants_all()]


def readiness_check() -> dict[str, Any]:
    """Whether this node can serve: the database and the broker answer. Invariants are not
    asked: a bad input or a slow queue must never take a node out of a load balancer."""
    database = database_ping()
    broker = broker_ping()
    return {"ready": bool(database["ok"] and broker["ok"]), "database": database, "broker": broker}


def health_status(*, database_ok: bool, broker_ok: bool, outcomes: list[InvariantOutcome]) -> str:
    worst = state_worst(o.state for o in outcomes)
    if not database_ok or not broker_ok or worst == InvariantState.CRITICAL:
        return STATUS_CRITICAL
    if worst not in (InvariantState.OK, InvariantState.INSUFFICIENT_DATA):
        return STATUS_DEGRADED
    return STATUS_OK


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
        {
            "name": o.name,
            "app": o.app,
            "state": o.state,
            "value": o.value,
            "sample": o.sample,
            "detail": o.detail,
        }
        for o in outcomes
    ]
    report["status"] = health_status(database_ok=database["ok"], broker_ok=broker["ok"], outcomes=outcomes)
    return report
