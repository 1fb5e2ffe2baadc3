"""The Day-0 runbook's service level objectives, read from the request metrics (ops/slo) and
the discovery queue:

- ``auth.login``: the password sign-ins (the API's ``/api/auth/login`` and ``/api/auth/token``
  and the sign-in page's POST) answer within 600 ms at the 95th percentile;
- ``discovery.queue_age``: the discovery jobs waiting for a worker have waited under 300 s at
  the 95th percentile;
- the burn rate of every SLO (ops' and ``auth.login``) stays under 2
  (``DISCOVERY_SLO_BURN_RATE_LIMIT``): at 2 the guard (discovery.guard) turns safe mode on.

ops' ``Slo`` takes one route and a latency bound that is one of the histogram's bounds; 600 ms
is not one (500 and 1000 are) and ``auth.login`` spans three routes, so the figures here read
the histogram between its bounds the way ``histogram_percentile`` does (linearly within a
bucket): "p95 under 600 ms" and "at most 5 % of sign-ins slower than 600 ms" are then the same
statement, and the burn rate is that share over the 5 % budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.urls import ResolverMatch

from ops.models import LATENCY_BOUNDS_MS, LATENCY_FIELDS
from ops.slo.selectors import RequestStats, request_stats, slo_status
from ops.slo.slos import BURN_WINDOWS, slos_all

# -- the sign-in routes ---------------------------------------------------------------------
# The request metrics name a request by its URL name, whatever its method; the sign-in page
# answers GET (the form, a few ms) and POST (the password check, hundreds of ms) under one
# name, and counting the GETs would halve the page's p95. SignInPostRouteMiddleware files the
# POSTs under a name of their own.
SIGNIN_PAGE_ROUTE = "members:signin"
SIGNIN_PAGE_POST_ROUTE = "members:signin-post"
# The API's password sign-in (a session), its token endpoint (a token for a password) and
# the sign-in page's POST.
AUTH_LOGIN_ROUTES: tuple[str, ...] = ("auth-login", "auth-token", SIGNIN_PAGE_POST_ROUTE)


class SignInPostRouteMiddleware:
    """Files a POST to the sign-in page under ``members:signin-post`` in the request metrics.

    It sits right inside ``RequestMetricsMiddleware`` and, once the view has answered, gives
    the request a match of that name (the view and every middleware inside this one saw the
    real one)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and request.method == "POST" and match.view_name == SIGNIN_PAGE_ROUTE:
            request.resolver_match = ResolverMatch(
                match.func,
                match.args,
                match.kwargs,
                url_name=SIGNIN_PAGE_POST_ROUTE.rpartition(":")[2],
                app_names=match.app_names,
                namespaces=match.namespaces,
                route=match.route,
            )
        return response


# -- the objectives --------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteLatencySlo:
    """A percentile of several routes' latency under a bound (any bound, not only the
    histogram's)."""

    name: str
    routes: tuple[str, ...]
    quantile: float
    under_ms: float
    description: str

    @property
    def budget(self) -> float:
        """The share of requests that may be slower than ``under_ms``."""
        return 1.0 - self.quantile

    @property
    def objective(self) -> str:
        return f"p{100 * self.quantile:g} under {self.under_ms:g} ms"


@dataclass(frozen=True)
class QueueAgeSlo:
    name: str
    quantile: float
    under_seconds: float
    description: str

    @property
    def objective(self) -> str:
        return f"p{100 * self.quantile:g} age under {self.under_seconds:g} s"


AUTH_LOGIN = RouteLatencySlo(
    name="auth.login",
    routes=AUTH_LOGIN_ROUTES,
    quantile=0.95,
    under_ms=600.0,
    description="Password sign-in (API login, API token, sign-in page POST) answers within 600 ms at p95",
)
DISCOVERY_QUEUE_AGE = QueueAgeSlo(
    name="discovery.queue_age",
    quantile=0.95,
    under_seconds=300.0,
    description="Discovery jobs waiting for a worker have waited under 300 s at p95",
)


def burn_rate_limit() -> float:
    """The burn rate at which the guard turns safe mode on (the runbook's 2.0)."""
    return float(settings.DISCOVERY_SLO_BURN_RATE_LIMIT)


# -- reads -------------------------------------------------------------------------------------
def histogram_count_slower(buckets: Sequence[int], *, ms: float) -> float:
    """Requests slower than ``ms``, reading a bucket that straddles ``ms`` as spread evenly
    (as ``histogram_percentile`` does, so ``p <= ms`` exactly when this count is at most
    ``(1 - p) * total``). The open top bucket counts as its lower bound, as there."""
    slower = 0.0
    lower = 0.0
    for index, count in enumerate(buckets):
        if index >= len(LATENCY_BOUNDS_MS):  # the open bucket: above the last bound
            if lower >= ms:
                slower += count
            break
        upper = float(LATENCY_BOUNDS_MS[index])
        if lower >= ms:
            slower += count
        elif upper > ms and count:
            slower += count * (upper - ms) / (upper - lower)
        lower = upper
    return slower


def request_stats_sum(items: Iterable[RequestStats]) -> RequestStats:
    count, errors, total_ms = 0, 0, 0.0
    buckets = [0] * len(LATENCY_FIELDS)
    for stats in items:
        count += stats.count
        errors += stats.errors
        total_ms += stats.duration_ms_sum
        for index, value in enumerate(stats.buckets):
            buckets[index] += value
    return RequestStats(count=count, errors=errors, buckets=tuple(buckets), duration_ms_sum=total_ms)


def routes_stats(*, routes: Iterable[str], since: datetime, until: datetime) -> RequestStats:
    """The untagged requests of these routes over the window, summed."""
    return request_stats_sum(request_stats(since=since, until=until, route=route) for route in routes)


@dataclass(frozen=True)
class LatencyWindow:
    window: str
    count: int
    slower: float  # requests slower than the bound (interpolated within a bucket)
    budget: float
    p95_ms: float | None

    @property
    def burn_rate(self) -> float | None:
        return None if not self.count else (self.slower / self.count) / self.budget


@dataclass(frozen=True)
class LatencySloStatus:
    slo: RouteLatencySlo
    windows: dict[str, LatencyWindow]

    @property
    def burn_rate(self) -> float | None:
        """Over both windows: the lower of their burn rates (as ops' SloStatus)."""
        rates = [w.burn_rate for w in self.windows.values()]
        if not rates or any(rate is None for rate in rates):
            return None
        return min(rate for rate in rates if rate is not None)

    @property
    def sample(self) -> int:
        return min((w.count for w in self.windows.values()), default=0)


def latency_slo_window(slo: RouteLatencySlo, *, until: datetime, window: str) -> LatencyWindow:
    stats = routes_stats(routes=slo.routes, since=until - BURN_WINDOWS[window], until=until)
    return LatencyWindow(
        window=window,
        count=stats.count,
        slower=histogram_count_slower(stats.buckets, ms=slo.under_ms),
        budget=slo.budget,
        p95_ms=stats.percentile(slo.quantile),
    )


def latency_slo_status(slo: RouteLatencySlo, *, until: datetime) -> LatencySloStatus:
    return LatencySloStatus(
        slo=slo, windows={name: latency_slo_window(slo, until=until, window=name) for name in BURN_WINDOWS}
    )


@dataclass(frozen=True)
class QueueAge:
    waiting: int  # jobs queued and available to a worker now
    p95_seconds: float | None


def discovery_queue_p95_age() -> QueueAge:
    """The 95th percentile (nearest rank) of how long the discovery jobs a worker could take
    now have waited, by the database's clock (jobs backing off before a retry are not waiting
    for a worker): the queue health selector's figure, the one the staff API shows."""
    from discovery.health_queues import discovery_queue_health

    health = discovery_queue_health()
    return QueueAge(waiting=health["waiting"], p95_seconds=health["p95_age_seconds"])


@dataclass(frozen=True)
class BurnReading:
    """One SLO's multiwindow burn rate (the lower of its 5 min and 1 h rates) and its sample
    (the smaller window's request count)."""

    slo: str
    burn_rate: float | None
    sample: int
    detail: str


def _fmt(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}x"


def slo_burn_readings(*, until: datetime) -> list[BurnReading]:
    """Every SLO's burn rate: ops' (one per route and objective) and ``auth.login``."""
    readings: list[BurnReading] = []
    for slo in slos_all():
        status = slo_status(slo, until=until)
        windows = ", ".join(f"{n}: {_fmt(w.burn_rate)} ({w.bad}/{w.count})" for n, w in status.windows.items())
        readings.append(BurnReading(slo=slo.name, burn_rate=status.burn_rate, sample=status.sample, detail=windows))
    login = latency_slo_status(AUTH_LOGIN, until=until)
    windows = ", ".join(f"{n}: {_fmt(w.burn_rate)} ({w.slower:.0f}/{w.count})" for n, w in login.windows.items())
    readings.append(BurnReading(slo=AUTH_LOGIN.name, burn_rate=login.burn_rate, sample=login.sample, detail=windows))
    return readings


@dataclass(frozen=True)
class BurnWorst:
    """The highest burn rate among the SLOs with enough requests (None when none has), and the
    sample it stands on (else the largest sample seen, below the minimum)."""

    reading: BurnReading | None
    sample: int
    readings: list[BurnReading]

    @property
    def burn_rate(self) -> float | None:
        return None if self.reading is None else self.reading.burn_rate


def slo_burn_worst(*, until: datetime, min_sample: int) -> BurnWorst:
    readings = slo_burn_readings(until=until)
    eligible = [r for r in readings if r.burn_rate is not None and r.sample >= min_sample]
    if not eligible:
        return BurnWorst(reading=None, sample=max((r.sample for r in readings), default=0), readings=readings)
    worst = max(eligible, key=lambda r: (r.burn_rate or 0.0, r.sample))
    return BurnWorst(reading=worst, sample=worst.sample, readings=readings)


# -- gate metrics: the runbook's thresholds, for the canary's rollout gates --------------------
def slo_gate_metrics_register() -> None:
    """``discovery.auth_login_p95_ms`` (over the gate's window) and ``slo.burn_rate_max``
    (ending at the window's end), so a rollout (the runbook's canary) can hold or roll back on
    the alerts' thresholds. Both count requests as their sample. (The queue's age is no gate:
    a handful of waiting jobs is no sample, and a rollout would hold on it for ever.)"""
    from flags.gates import GateMetric, GateReading, GateWindow, gate_metric_register
    from ops.invariants import min_sample_default

    def login_p95(window: GateWindow) -> GateReading:
        stats = routes_stats(routes=AUTH_LOGIN.routes, since=window.since, until=window.until)
        return GateReading(value=stats.percentile(AUTH_LOGIN.quantile), sample=stats.count, detail="sign-ins")

    def burn_max(window: GateWindow) -> GateReading:
        worst = slo_burn_worst(until=window.until, min_sample=min_sample_default())
        detail = "no SLO has enough requests" if worst.reading is None else worst.reading.slo
        return GateReading(value=worst.burn_rate, sample=worst.sample, detail=detail)

    gate_metric_register(
        GateMetric(
            name="discovery.auth_login_p95_ms",
            app="discovery",
            description=f"{AUTH_LOGIN.description} (over the gate's window, every cohort)",
            compute=login_p95,
            unit="ms",
        )
    )
    gate_metric_register(
        GateMetric(
            name="slo.burn_rate_max",
            app="discovery",
            description="The highest SLO burn rate over both 5 min and 1 h, any route (the guard's figure)",
            compute=burn_max,
            unit="x",
        )
    )


__all__ = [
    "AUTH_LOGIN",
    "AUTH_LOGIN_ROUTES",
    "DISCOVERY_QUEUE_AGE",
    "SIGNIN_PAGE_POST_ROUTE",
    "BurnReading",
    "BurnWorst",
    "LatencySloStatus",
    "QueueAge",
    "RouteLatencySlo",
    "SignInPostRouteMiddleware",
    "burn_rate_limit",
    "discovery_queue_p95_age",
    "histogram_count_slower",
    "latency_slo_status",
    "routes_stats",
    "slo_burn_readings",
    "slo_burn_worst",
    "slo_gate_metrics_register",
]
