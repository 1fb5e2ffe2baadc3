"""Request-metric rows written straight into the store, for tests of SLOs, burn rates,
invariants and pages that read them (one helper, not a copy per test module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from ops.models import LATENCY_FIELDS
from ops.slo.services import RouteMinuteDelta, route_minutes_add


def now_minute() -> datetime:
    return timezone.now().astimezone(UTC).replace(second=0, microsecond=0)


def route_minute(
    minute: datetime,
    route: str,
    *,
    count: int,
    errors: int = 0,
    buckets: dict[str, int] | None = None,
    flag: str = "",
    cohort: str = "",
) -> RouteMinuteDelta:
    """One route's minute: ``count`` requests (all under 50 ms unless ``buckets`` says which
    latency bucket holds how many; they must add up to ``count``), ``errors`` of them 5xx."""
    given = {"le_50": count} if buckets is None else buckets
    values = tuple(given.get(name, 0) for name in LATENCY_FIELDS)
    assert sum(values) == count, "the buckets must hold every request"
    return RouteMinuteDelta(
        minute=minute,
        route=route,
        flag=flag,
        cohort=cohort,
        count=count,
        errors=errors,
        duration_ms_sum=0.0,
        buckets=values,
    )


def route_minute_put(
    route: str,
    *,
    count: int,
    errors: int = 0,
    buckets: dict[str, int] | None = None,
    minutes_ago: float = 1,
    minute: datetime | None = None,
    flag: str = "",
    cohort: str = "",
) -> None:
    """Store one route's minute, ``minutes_ago`` before this one (or at ``minute``)."""
    at = minute if minute is not None else now_minute() - timedelta(minutes=minutes_ago)
    route_minutes_add(
        deltas=[route_minute(at, route, count=count, errors=errors, buckets=buckets, flag=flag, cohort=cohort)]
    )
