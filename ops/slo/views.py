"""``/ops/requests``: request figures per route over the last hour, requests and p95 per
minute (an inline SVG drawn here, no script, no library) and the SLOs' burn rates. Staff only."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ops.invariants import min_sample_default
from ops.slo.selectors import RequestStats, SloStatus, minute_series, rollout_cohort_stats, route_stats, slo_status
from ops.slo.slos import BURN_PAGE, BURN_WARN, slos_all

WINDOW = timedelta(hours=1)

# The chart's coordinate system (the SVG scales to the page's width).
CHART_WIDTH = 720
CHART_HEIGHT = 240
PLOT_LEFT = 48
PLOT_RIGHT = 56
PLOT_TOP = 14
PLOT_BOTTOM = 36


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def axis_ticks(highest: float, *, count: int = 4) -> list[float]:
    """Axis ticks from 0 up to at least ``highest``, in whole steps of 1, 2 or 5 x 10^k."""
    highest = max(float(highest), 1.0)
    rough = highest / count
    magnitude = 10 ** max(math.floor(math.log10(rough)), 0)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    top = math.ceil(highest / step) * step
    return [round(step * i, 6) for i in range(round(top / step) + 1)]


def _tick_text(value: float) -> str:
    return f"{value:g}"


def requests_chart(series: list[tuple[datetime, RequestStats]]) -> dict[str, Any]:
    """Bars of requests per minute (left axis) and a line of each minute's p95 (right axis)."""
    plot_width = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    plot_height = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    baseline = PLOT_TOP + plot_height
    right = CHART_WIDTH - PLOT_RIGHT
    counts = [stats.count for _, stats in series]
    p95s = [stats.p95 for _, stats in series]
    count_ticks = axis_ticks(max(counts, default=0))
    ms_ticks = axis_ticks(max((p for p in p95s if p is not None), default=0.0))
    count_top, ms_top = count_ticks[-1], ms_ticks[-1]
    band = plot_width / max(len(series), 1)
    width = max(band * 0.7, 1.0)
    bars: list[dict[str, Any]] = []
    points: list[str] = []
    for index, (minute, stats) in enumerate(series):
        height = plot_height * stats.count / count_top
        centre = PLOT_LEFT + band * index + band / 2
        bars.append(
            {
                "x": round(centre - width / 2, 2),
                "y": round(baseline - height, 2),
                "width": round(width, 2),
                "height": round(height, 2),
                "value": stats.count,
                "title": f"{minute:%H:%M} UTC: {stats.count} requests, {stats.errors} 5xx, p95 {_ms(stats.p95)}",
                "label": f"{minute:%H:%M}" if (len(series) - 1 - index) % 10 == 0 else "",
                "label_x": round(centre, 2),
            }
        )
        if stats.p95 is not None:
            points.append(f"{round(centre, 2)},{round(baseline - plot_height * stats.p95 / ms_top, 2)}")
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": PLOT_LEFT,
        "right": right,
        "baseline": baseline,
        "tick_x": PLOT_LEFT - 6,
        "ms_tick_x": right + 6,
        "label_y": baseline + 18,
        "count_ticks": [
            {"text": _tick_text(t), "y": round(baseline - plot_height * t / count_top, 2)} for t in count_ticks
        ],
        "ms_ticks": [{"text": _tick_text(t), "y": round(baseline - plot_height * t / ms_top, 2)} for t in ms_ticks],
        "bars": bars,
        "p95_points": " ".join(points),
        "total": sum(counts),
    }


def _slo_row(status: SloStatus, minimum: int) -> dict[str, Any]:
    rate = status.burn_rate
    if status.sample < minimum:
        state, text = "insufficient_data", f"not enough data (n={status.sample} < {minimum})"
    elif rate is not None and rate > BURN_PAGE:
        state, text = "critical", "burning: page"
    elif rate is not None and rate > BURN_WARN:
        state, text = "warn", "burning fast"
    else:
        state, text = "ok", "within budget"
    return {
        "slo": status.slo,
        "windows": [
            {"name": name, "burn": _burn(w.burn_rate), "bad": w.bad, "count": w.count}
            for name, w in status.windows.items()
        ],
        "burn": _burn(rate),
        "state": state,
        "state_text": text,
    }


def _stats_row(stats: RequestStats, slow_ms: int) -> dict[str, Any]:
    return {
        "count": stats.count,
        "errors": stats.errors,
        "error_rate": _percent(stats.error_rate),
        "slow_share": _percent(stats.slower_than(slow_ms) / stats.count if stats.count else None),
        "p50": _ms(stats.p50),
        "p95": _ms(stats.p95),
        "p99": _ms(stats.p99),
    }


def requests_context(*, now: datetime) -> dict[str, Any]:
    since = now - WINDOW
    slow_ms = int(settings.REQUEST_METRICS_SLOW_MS)
    minimum = min_sample_default()
    routes = [
        {"route": route, **_stats_row(stats, slow_ms)} for route, stats in route_stats(since=since, until=now).items()
    ]
    cohorts = [
        {"flag": flag, "cohort": cohort, **_stats_row(stats, slow_ms)}
        for (flag, cohort), stats in rollout_cohort_stats(since=since, until=now).items()
    ]
    series = minute_series(since=since, until=now)
    return {
        "since": since,
        "until": now,
        "routes": routes,
        "cohorts": cohorts,
        "slow_ms": slow_ms,
        "chart": requests_chart(series),
        "series": [{"minute": minute, **_stats_row(stats, slow_ms)} for minute, stats in series if stats.count],
        "slos": [_slo_row(slo_status(slo, until=now), minimum) for slo in slos_all()],
        "burn_page": BURN_PAGE,
        "burn_warn": BURN_WARN,
    }


@staff_member_required
@never_cache
@require_GET
def ops_requests(request: HttpRequest) -> HttpResponse:
    """Request metrics and SLOs. Staff only: anyone else is sent to the admin's sign-in."""
    context = {"nav": "ops", **requests_context(now=timezone.now())}
    return render(request, "ops/requests.html", context)
