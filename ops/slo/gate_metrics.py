"""The rollout gates' request metrics (flags/gates.py): error rate and slow share of a
rollout's treatment against its control, and each SLO's burn rates."""

from __future__ import annotations

from django.conf import settings

from flags.gates import CONTROL, TREATMENT, Cohort, GateReading, GateWindow, gate_metric, gate_metric_register
from flags.gates import GateMetric as _GateMetric
from ops.slo.selectors import RequestStats, cohort_stats, slo_window
from ops.slo.slos import BURN_WINDOWS, Slo, slos_all


def _rate_text(cohort: Cohort) -> str:
    return f"{100 * cohort.rate:.2f} % of {cohort.n}" if cohort.rate is not None else "no requests"


def _comparative(window: GateWindow, bad: str) -> GateReading:
    stats = cohort_stats(flag=window.flag, since=window.since, until=window.until)
    slow_ms = int(settings.REQUEST_METRICS_SLOW_MS)

    def cohort(name: str) -> Cohort:
        s = stats.get(name, RequestStats())
        return Cohort(n=s.count, events=s.errors if bad == "errors" else s.slower_than(slow_ms))

    treatment, control = cohort(TREATMENT), cohort(CONTROL)
    return GateReading(
        value=treatment.rate,
        sample=treatment.n + control.n,
        treatment=treatment,
        control=control,
        detail=f"treatment {_rate_text(treatment)}, control {_rate_text(control)}",
    )


@gate_metric(
    name="http.error_rate",
    app="ops",
    description="Share of requests answered with a 5xx, treatment against control (every route)",
    comparative=True,
    unit="ratio",
)
def http_error_rate(window: GateWindow) -> GateReading:
    return _comparative(window, "errors")


@gate_metric(
    name="http.slow_share",
    app="ops",
    description="Share of requests slower than REQUEST_METRICS_SLOW_MS, treatment against control (every route)",
    comparative=True,
    unit="ratio",
)
def http_slow_share(window: GateWindow) -> GateReading:
    return _comparative(window, "slow")


@gate_metric(
    name="http.p95_ms",
    app="ops",
    description="p95 latency of the treatment cohort's requests, in ms (every route; from the histogram)",
    unit="ms",
)
def http_p95_ms(window: GateWindow) -> GateReading:
    stats = cohort_stats(flag=window.flag, since=window.since, until=window.until).get(TREATMENT, RequestStats())
    p95 = stats.p95
    return GateReading(
        value=p95,
        sample=stats.count,
        detail=f"p95 {p95:.0f} ms over {stats.count} treatment requests" if p95 is not None else "no requests",
    )


def _burn_rate_metric(slo: Slo, window_name: str) -> _GateMetric:
    def compute(window: GateWindow) -> GateReading:
        # Over every request to the route (not one cohort), ending at the window's end.
        figures = slo_window(slo, until=window.until, window=window_name)
        return GateReading(
            value=figures.burn_rate,
            sample=figures.count,
            detail=f"{figures.bad} of {figures.count} requests over budget ({slo.objective})",
        )

    return _GateMetric(
        name=f"slo.{slo.name}.burn_rate_{window_name}",
        app="ops",
        description=f"Burn rate of the SLO {slo.name} ({slo.route}: {slo.objective}) over {window_name}",
        compute=compute,
        unit="x",
    )


def slo_gate_metrics_register() -> None:
    for slo in slos_all():
        for window_name in BURN_WINDOWS:
            gate_metric_register(_burn_rate_metric(slo, window_name))


slo_gate_metrics_register()
