"""The Day-0 runbook's alert table (section 4) as invariants (ops/invariants.py): beat checks
them every minute, stores the results and alerts once on each change of state.

| runbook metric                           | invariant                              | critical above |
|------------------------------------------|----------------------------------------|----------------|
| discovery queue ``p95_age_sec``          | ``discovery.queue_p95_age_seconds``    | 300 s          |
| ``auth.login`` ``p95_ms``                | ``discovery.auth_login_p95_ms``        | 600 ms         |
| ``vw_slo_burnrate.burn_rate``            | ``discovery.slo_burn_rate_max``        | 2.0            |
| 5xx error rate                           | ``discovery.http_5xx_rate``            | 1 %            |

(The exploration-rate row is policy health's.) The request figures are over the last
5 minutes and read "not enough data" below ``OPS_INVARIANT_MIN_SAMPLE`` requests; the queue's
age needs no minimum (one job waiting 10 minutes is a stuck queue).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from discovery.slos import (
    AUTH_LOGIN,
    DISCOVERY_QUEUE_AGE,
    burn_rate_limit,
    discovery_queue_p95_age,
    routes_stats,
    slo_burn_worst,
)
from ops.invariants import Invariant, Reading, figure_invariant, invariant_register, min_sample_default
from ops.slo.selectors import request_stats

WINDOW = timedelta(minutes=5)


@figure_invariant(
    name="discovery.queue_p95_age_seconds",
    app="discovery",
    description="p95 of how long the discovery jobs waiting for a worker have waited (runbook: scale the workers)",
    critical_above=DISCOVERY_QUEUE_AGE.under_seconds,
    unit="s",
)
def queue_p95_age_seconds() -> Reading:
    age = discovery_queue_p95_age()
    if age.p95_seconds is None:
        return Reading(value=0.0, sample=0, detail="no job waiting")
    return Reading(value=round(age.p95_seconds, 1), sample=age.waiting, detail=f"{age.waiting} jobs waiting")


@figure_invariant(
    name="discovery.auth_login_p95_ms",
    app="discovery",
    description="p95 of password sign-ins over 5 min: API login, API token, sign-in page POST (runbook: "
    "check the database connections)",
    critical_above=AUTH_LOGIN.under_ms,
    unit="ms",
    min_sample=min_sample_default,
)
def auth_login_p95_ms() -> Reading:
    now = timezone.now()
    stats = routes_stats(routes=AUTH_LOGIN.routes, since=now - WINDOW, until=now)
    p95 = stats.percentile(AUTH_LOGIN.quantile)
    return Reading(
        value=None if p95 is None else round(p95, 1),
        sample=stats.count,
        detail=f"{', '.join(AUTH_LOGIN.routes)} over 5 min",
    )


def slo_burn_rate_max() -> Reading:
    worst = slo_burn_worst(until=timezone.now(), min_sample=min_sample_default())
    reading = worst.reading
    if reading is None:
        return Reading(value=None, sample=worst.sample, detail="no SLO has enough requests")
    return Reading(value=reading.burn_rate, sample=reading.sample, detail=f"{reading.slo}: {reading.detail}")


def _burn_rate_invariant() -> Invariant:
    # The limit comes from the settings (read once, when the app is ready), shared with the guard.
    return Invariant(
        name="discovery.slo_burn_rate_max",
        app="discovery",
        description="The highest SLO burn rate over both 5 min and 1 h, any route (runbook: enable safe mode; "
        "the SLO guard does at the limit)",
        kind="figure",
        check=slo_burn_rate_max,
        critical_above=burn_rate_limit(),
        unit="x",
        min_sample=min_sample_default,
    )


invariant_register(_burn_rate_invariant())


@figure_invariant(
    name="discovery.http_5xx_rate",
    app="discovery",
    description="Share of every request answered with a 5xx over 5 min (runbook: roll the deployment back)",
    critical_above=1.0,
    unit="%",
    min_sample=min_sample_default,
)
def http_5xx_rate() -> Reading:
    now = timezone.now()
    stats = request_stats(since=now - WINDOW, until=now)
    rate = stats.error_rate
    return Reading(
        value=None if rate is None else round(100.0 * rate, 3),
        sample=stats.count,
        detail=f"{stats.errors} of {stats.count} requests",
    )


__all__ = ["auth_login_p95_ms", "http_5xx_rate", "queue_p95_age_seconds", "slo_burn_rate_max"]
