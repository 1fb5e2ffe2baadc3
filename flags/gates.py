"""Gate metrics: the named figures a staged rollout reads at every controller tick.

Apps register them in ``AppConfig.ready`` (as they register invariants): ops registers the
request metrics (error rate and slow share per cohort, SLO burn rates), other apps their own.
A gate on a rollout names a metric and a threshold; the controller computes the metric over
a window and judges it.

A metric returns a ``GateReading``. An *absolute* metric gives a ``value`` (a burn rate, a
p95 in ms) and the ``sample`` it was computed from. A *comparative* metric also gives the
treatment and control cohorts as Bernoulli counts (requests, and how many of them were bad:
a 5xx, slower than a threshold), which the controller compares with a sequential test. No
data is ``value=None`` (or ``sample=0``); a failed computation raises ``GateError`` (or any
exception): both make the controller hold, never advance and never roll back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

TREATMENT = "treatment"
CONTROL = "control"


class GateError(Exception):
    """The metric could not be computed (its source is down, its query failed)."""


@dataclass(frozen=True)
class Cohort:
    """Bernoulli counts of one cohort over the window: ``n`` observations, ``events`` bad."""

    n: int
    events: int

    @property
    def rate(self) -> float | None:
        return self.events / self.n if self.n else None


@dataclass(frozen=True)
class GateWindow:
    """What a metric is computed over: the rollout's flag (cohorts are its treatment, the
    units in its percentage, and its control, the rest) and a time window."""

    flag: str
    since: datetime
    until: datetime


@dataclass(frozen=True)
class GateReading:
    value: float | None
    sample: int = 0
    treatment: Cohort | None = None
    control: Cohort | None = None
    detail: str = ""


GateCompute = Callable[[GateWindow], GateReading]


@dataclass(frozen=True)
class GateMetric:
    name: str
    app: str
    description: str
    compute: GateCompute
    comparative: bool = False
    unit: str = ""


_REGISTRY: dict[str, GateMetric] = {}
# Families of metrics listed when asked (one per invariant, say), so that they cover what
# other apps register after the family's app is ready.
_FAMILIES: list[Callable[[], list[GateMetric]]] = []


def gate_metric_register(metric: GateMetric) -> GateMetric:
    _REGISTRY[metric.name] = metric
    return metric


def gate_metric(
    *, name: str, app: str, description: str, comparative: bool = False, unit: str = ""
) -> Callable[[GateCompute], GateCompute]:
    """Register the decorated function as the gate metric ``name``."""

    def decorator(func: GateCompute) -> GateCompute:
        gate_metric_register(
            GateMetric(name=name, app=app, description=description, compute=func, comparative=comparative, unit=unit)
        )
        return func

    return decorator


def gate_metric_family_register(lister: Callable[[], list[GateMetric]]) -> None:
    """Register a family of metrics, listed each time the registry is read."""
    _FAMILIES.append(lister)


def _everything() -> dict[str, GateMetric]:
    metrics: dict[str, GateMetric] = {}
    for lister in _FAMILIES:
        metrics.update((m.name, m) for m in lister())
    metrics.update(_REGISTRY)
    return metrics


def gate_metric_get(name: str) -> GateMetric:
    """The metric named ``name`` (KeyError if no app registered it)."""
    found = _REGISTRY.get(name)
    return found if found is not None else _everything()[name]


def gate_metrics_all() -> list[GateMetric]:
    return sorted(_everything().values(), key=lambda m: m.name)
