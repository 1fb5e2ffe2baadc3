"""Staged rollouts: a flag's percentage raised stage by stage by a beat controller that reads
gates, rolls back on a breach and records every decision (see controller.py)."""

from __future__ import annotations


def rollouts_ready() -> None:
    """Hook the rollouts into the process (call from ``FlagsConfig.ready``): the running
    rollouts in the flags snapshot, their families on /metrics, the controller's task."""
    from flags.rollouts import tasks  # noqa: F401  (registers flags.rollouts_tick)
    from flags.rollouts.cohorts import rollouts_section_register

    rollouts_section_register()
    try:
        from ops.prometheus import prometheus_collector_register
    except ImportError:  # pragma: no cover - ops is always installed here
        return
    from flags.rollouts.metrics import rollout_metrics

    prometheus_collector_register(rollout_metrics, name="flags.rollouts")
