"""Reads of the request metrics: per-route figures over a window, per-cohort counts for the
rollout gates, SLO burn rates. A window takes every minute that overlaps [since, until)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum

from ops.models import LATENCY_FIELDS, RouteMinute
from ops.slo.histogram import histogram_count_above, histogram_percentile
from ops.slo.slos import BURN_WINDOWS, Slo

MINUTE = timedelta(minutes=1)
_SUMS: dict[str, Any] = {
    "n": Sum("count"),
    "n_errors": Sum("errors"),
    "ms_sum": Sum("duration_ms_sum"),
    **{f"sum_{name}": Sum(name) for name in LATENCY_FIELDS},
}


@dataclass(frozen=True)
class RequestStats:
    """Requests counted over a window (one route, one cohort, or everything)."""

    count: int = 0
    errors: int = 0
    buckets: tuple[int, ...] = (0,) * len(LATENCY_FIELDS)
    duration_ms_sum: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None

    @property
    def mean_ms(self) -> float | None:
        return self.duration_ms_sum / self.count if self.count else None

    def percentile(self, quantile: float) -> float | None:
        return histogram_percentile(self.buckets, quantile)

    @property
    def p50(self) -> float | None:
        return self.percentile(0.50)

    @property
    def p95(self) -> float | None:
        return self.percentile(0.95)

    @property
    def p99(self) -> float | None:
        return self.percentile(0.99)

    def slower_than(self, bound_ms: int) -> int:
        return histogram_count_above(self.buckets, bound_ms=bound_ms)


def _stats(row: dict[str, Any]) -> RequestStats:
    return RequestStats(
        count=int(row["n"] or 0),
        errors=int(row["n_errors"] or 0),
        buckets=tuple(int(row[f"sum_{name}"] or 0) for name in LATENCY_FIELDS),
        duration_ms_sum=float(row["ms_sum"] or 0.0),
    )


def route_minutes_window(*, since: datetime, until: datetime) -> QuerySet[RouteMinute]:
    """The rows of every minute overlapping [since, until)."""
    return RouteMinute.objects.filter(minute__gt=since - MINUTE, minute__lt=until)


def request_stats(
    *, since: datetime, until: datetime, route: str | None = None, flag: str = "", cohort: str = ""
) -> RequestStats:
    """Every request (or one route's) over the window; untagged by default, or one cohort."""
    rows = route_minutes_window(since=since, until=until).filter(flag=flag, cohort=cohort)
    if route is not None:
        rows = rows.filter(route=route)
    return _stats(rows.aggregate(**_SUMS))


def route_stats(*, since: datetime, until: datetime) -> dict[str, RequestStats]:
    """Each route's requests over the window, busiest first."""
    rows = (
        route_minutes_window(since=since, until=until)
        .filter(flag="", cohort="")
        .values("route")
        .annotate(**_SUMS)
        .order_by("-n", "route")
    )
    return {row["route"]: _stats(row) for row in rows}


def cohort_stats(*, flag: str, since: datetime, until: datetime) -> dict[str, RequestStats]:
    """A rollout's cohorts ("treatment", "control") over the window, all routes summed."""
    rows = (
        route_minutes_window(since=since, until=until)
        .filter(flag=flag)
        .exclude(cohort="")
        .values("cohort")
        .annotate(**_SUMS)
        .order_by("cohort")
    )
    return {row["cohort"]: _stats(row) for row in rows}


def rollout_cohort_stats(*, since: datetime, until: datetime) -> dict[tuple[str, str], RequestStats]:
    """Every (flag, cohort) seen over the window."""
    rows = (
        route_minutes_window(since=since, until=until)
        .exclude(flag="")
        .values("flag", "cohort")
        .annotate(**_SUMS)
        .order_by("flag", "cohort")
    )
    return {(row["flag"], row["cohort"]): _stats(row) for row in rows}


def minute_series(*, since: datetime, until: datetime, route: str | None = None) -> list[tuple[datetime, RequestStats]]:
    """Per minute over the window (every minute, empty ones included), untagged."""
    rows = route_minutes_window(since=since, until=until).filter(flag="", cohort="")
    if route is not None:
        rows = rows.filter(route=route)
    found = {row["minute"]: _stats(row) for row in rows.values("minute").annotate(**_SUMS).order_by("minute")}
    first = since.astimezone(UTC).replace(second=0, microsecond=0)
    series: list[tuple[datetime, RequestStats]] = []
    minute = first
    while minute < until:
        series.append((minute, found.get(minute, RequestStats())))
        minute += MINUTE
    return series


# -- SLOs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SloWindow:
    window: str
    count: int
    bad: int
    budget: float

    @property
    def bad_share(self) -> float | None:
        return self.bad / self.count if self.count else None

    @property
    def burn_rate(self) -> float | None:
        share = self.bad_share
        return None if share is None else share / self.budget


def slo_bad(slo: Slo, stats: RequestStats) -> int:
    """The requests of ``stats`` that spent ``slo``'s budget."""
    if slo.latency_ms is not None:
        return stats.slower_than(slo.latency_ms)
    return stats.errors


def slo_window(slo: Slo, *, until: datetime, window: str) -> SloWindow:
    """``slo``'s figures over the window named ``window`` ("5m", "1h") ending at ``until``."""
    stats = request_stats(since=until - BURN_WINDOWS[window], until=until, route=slo.route)
    return SloWindow(window=window, count=stats.count, bad=slo_bad(slo, stats), budget=slo.budget)


@dataclass(frozen=True)
class SloStatus:
    slo: Slo
    windows: dict[str, SloWindow]

    @property
    def burn_rate(self) -> float | None:
        """The multiwindow burn rate: the lowest of the windows' (an alert needs all of them
        above its threshold: the long window says it matters, the short one that it is still
        happening)."""
        rates = [w.burn_rate for w in self.windows.values()]
        if any(rate is None for rate in rates):
            return None
        return min(rate for rate in rates if rate is not None)

    @property
    def sample(self) -> int:
        return min((w.count for w in self.windows.values()), default=0)


def slo_status(slo: Slo, *, until: datetime) -> SloStatus:
    return SloStatus(slo=slo, windows={name: slo_window(slo, until=until, window=name) for name in BURN_WINDOWS})
