"""Staff pages for operators: ``/ops/matches``, the matches' business metrics.

Server-side charts: the view lays the bars out (inline SVG, no script, no library), the
template draws them, and each chart carries a title, a description and a table with
the same numbers.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from matchplatform.exceptions import InvalidInput
from proposals.matches.metrics import DAYS_DEFAULT, DAYS_MAX, days_parse, match_metrics

DAY_CHOICES = (7, 30, 90)

# The charts' coordinate system (the SVG scales to the page's width).
CHART_WIDTH = 720
CHART_HEIGHT = 240
PLOT_LEFT = 44
PLOT_RIGHT = 28
PLOT_TOP = 14
PLOT_BOTTOM = 36
MAX_X_LABELS = 10


def duration_text(seconds: float | None) -> str:
    """Seconds for people: "45 s", "12 min 5 s", "3 h 20 min", "2 d 4 h"."""
    if seconds is None:
        return "no answers yet"
    total = max(round(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def nice_ticks(highest: int, *, count: int = 4) -> list[int]:
    """Whole-number axis ticks from 0 up to at least ``highest``, in steps of 1, 2 or 5 x 10^k."""
    highest = max(int(highest), 1)
    rough = highest / count
    magnitude = 10 ** max(math.floor(math.log10(rough)), 0) if rough >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    top = math.ceil(highest / step) * step
    return list(range(0, top + 1, step))


def _day_label(value: str) -> str:
    day = date.fromisoformat(value)
    return f"{day:%b} {day.day}"


def bar_chart(values: list[int], labels: list[str], titles: list[str], *, label_every: int = 1) -> dict[str, Any]:
    """The geometry of a vertical bar chart: bars, y-axis ticks and x-axis labels, in the
    chart's own coordinates."""
    plot_width = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    plot_height = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    baseline = PLOT_TOP + plot_height
    ticks = nice_ticks(max(values, default=0))
    top = ticks[-1]
    band = plot_width / max(len(values), 1)
    width = max(band * 0.72, 1.0)
    bars = []
    for index, (value, label, title) in enumerate(zip(values, labels, titles, strict=True)):
        height = plot_height * value / top
        x = PLOT_LEFT + band * index + (band - width) / 2
        bars.append(
            {
                "x": round(x, 2),
                "y": round(baseline - height, 2),
                "width": round(width, 2),
                "height": round(height, 2),
                "value": value,
                "title": title,
                # Counted from the last bar, so the newest one (today) always has its label.
                "label": label if (len(values) - 1 - index) % label_every == 0 else "",
                "label_x": round(PLOT_LEFT + band * index + band / 2, 2),
                "value_y": round(baseline - height - 4, 2),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": PLOT_LEFT,
        "tick_x": PLOT_LEFT - 6,
        "right": CHART_WIDTH - PLOT_RIGHT,
        "baseline": baseline,
        "label_y": baseline + 18,
        "show_values": len(values) <= 31,
        "ticks": [{"value": t, "y": round(baseline - plot_height * t / top, 2)} for t in ticks],
        "bars": bars,
    }


def _context(metrics: dict[str, Any]) -> dict[str, Any]:
    series = metrics["expired_per_day"]
    every = max(math.ceil(len(series) / MAX_X_LABELS), 1)
    expired_chart = bar_chart(
        [d["expired"] for d in series],
        [_day_label(d["date"]) for d in series],
        [f"{d['date']}: {d['expired']} expired" for d in series],
        label_every=every,
    )

    mutual = metrics["mutual_connections"]
    sample = mutual["sample_size"]
    buckets = [{**b, "share": f"{100 * b['matches'] / sample:.1f} %" if sample else "-"} for b in mutual["buckets"]]
    mutual_chart = bar_chart(
        [b["matches"] for b in buckets],
        [b["label"] for b in buckets],
        [f"{b['label']} shared connections: {b['matches']} matches" for b in buckets],
    )
    busiest = max(series, key=lambda d: d["expired"], default=None)
    finished = metrics["finished"]
    rate = metrics["expiration_rate"]
    return {
        "metrics": metrics,
        "expired_total": sum(d["expired"] for d in series),
        "expired_busiest": busiest if busiest and busiest["expired"] else None,
        "expired_chart": expired_chart,
        "mutual_chart": mutual_chart,
        "mutual_buckets": buckets,
        "finished": finished,
        "rate_text": f"{100 * rate:.1f} %" if rate is not None else "-",
        "response_text": duration_text(metrics["avg_response_seconds"]),
        "first_day": series[0]["date"] if series else "",
        "last_day": series[-1]["date"] if series else "",
    }


@staff_member_required
@never_cache
@require_GET
def ops_matches(request: HttpRequest) -> HttpResponse:
    """The matches' business metrics, with charts. Staff only: anyone else is sent to the
    admin's sign-in."""
    context: dict[str, Any] = {"day_choices": DAY_CHOICES, "days_max": DAYS_MAX, "nav": "ops"}
    try:
        days = days_parse(request.GET.getlist("days"), default=DAYS_DEFAULT, blank_is_default=True)
    except InvalidInput as exc:
        context.update(days=None, error=exc.message)
        return render(request, "proposals/ops_matches.html", context, status=400)
    context.update(days=days, **_context(match_metrics(days=days)))
    return render(request, "proposals/ops_matches.html", context)
