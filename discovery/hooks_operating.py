"""Registrations made when the app is ready (see discovery.apps): the runbook's alert table as
invariants, its thresholds as rollout gate metrics, and the operating tasks (the SLO guard,
the retention GC) for Celery."""

from discovery import invariants, tasks_operating  # noqa: F401 - registered at import
from discovery.slos import slo_gate_metrics_register

slo_gate_metrics_register()
