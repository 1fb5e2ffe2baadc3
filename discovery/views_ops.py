"""``/ops/discovery``: policy health per policy version (``discovery.health.policy_health``),
as a table and a chart of each version's exploration rate against its epsilon (an inline SVG
laid out here, no script, no library, as the other ops pages). Staff only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from discovery.health import EXPLORATION_TOLERANCE, PolicyHealth, policy_health

HOURS_CHOICES = (1, 24, 168)
DEFAULT_HOURS = 24

CHART_WIDTH = 720
ROW_HEIGHT = 34
PLOT_LEFT = 170
PLOT_RIGHT = 24
PLOT_TOP = 10
PLOT_BOTTOM = 28


def _percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def exploration_chart(versions: list[PolicyHealth]) -> dict[str, Any]:
    """One row per version: a bar of the exploration rate, the epsilon as a tick and the
    +-50 % band around it shaded; the scale runs to the largest of them (at least 10 %)."""
    top = max([0.1, *((v.exploration_rate or 0.0) for v in versions), *((v.epsilon or 0.0) * 1.5 for v in versions)])
    top = min(1.0, top * 1.1)
    width = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    height = PLOT_TOP + ROW_HEIGHT * max(len(versions), 1) + PLOT_BOTTOM

    def x(value: float) -> float:
        return round(PLOT_LEFT + width * min(value, top) / top, 2)

    rows = []
    for index, v in enumerate(versions):
        y = PLOT_TOP + ROW_HEIGHT * index
        eps = v.epsilon or 0.0
        rate = v.exploration_rate or 0.0
        rows.append(
            {
                "label": v.version,
                "label_y": y + ROW_HEIGHT / 2,
                "bar_x": PLOT_LEFT,
                "bar_y": y + 8,
                "bar_width": round(x(rate) - PLOT_LEFT, 2),
                "bar_height": ROW_HEIGHT - 16,
                "band_x": x(eps * (1 - EXPLORATION_TOLERANCE)),
                "band_width": round(x(eps * (1 + EXPLORATION_TOLERANCE)) - x(eps * (1 - EXPLORATION_TOLERANCE)), 2),
                "band_y": y + 4,
                "band_height": ROW_HEIGHT - 8,
                "eps_x": x(eps),
                "alert": v.exploration_alert,
                "title": f"{v.version}: exploration {_percent(v.exploration_rate)} vs epsilon {_percent(v.epsilon)}",
            }
        )
    ticks = [round(top * i / 4, 4) for i in range(5)]
    baseline = PLOT_TOP + ROW_HEIGHT * max(len(versions), 1)
    return {
        "width": CHART_WIDTH,
        "height": height,
        "left": PLOT_LEFT,
        "right": CHART_WIDTH - PLOT_RIGHT,
        "baseline": baseline,
        "label_x": PLOT_LEFT - 8,
        "tick_y": baseline + 16,
        "ticks": [{"x": x(t), "text": _percent(t, 1)} for t in ticks],
        "rows": rows,
    }


def _row(v: PolicyHealth) -> dict[str, Any]:
    interval = v.mean_reward
    return {
        "version": v.version,
        "decisions": v.decisions,
        "randomized": v.randomized,
        "explored": v.explored,
        "exploration_rate": _percent(v.exploration_rate),
        "epsilon": _percent(v.epsilon),
        "epsilons": ", ".join(f"{e:g}" for e in v.epsilons),
        "alert": v.exploration_alert,
        "judged": v.exploration_judged,
        "exploration_detail": v.exploration_detail,
        "rewarded": v.rewarded,
        "reward_closed": v.reward_closed,
        "reward_open": v.reward_open,
        "mean_reward": _percent(interval.value),
        "mean_reward_interval": "-"
        if interval.lower is None
        else f"{_percent(interval.lower)} to {_percent(interval.upper)}",
        "off_propensity": v.off_propensity,
        "off_propensity_share": _percent(v.off_propensity_share),
        "propensity_sample": v.propensity_sample,
        "mean_importance_weight": _number(v.mean_importance_weight, 3),
        "effective_sample_size": _number(v.effective_sample_size, 0),
    }


def discovery_context(*, now: datetime, hours: int) -> dict[str, Any]:
    report = policy_health(since=now - timedelta(hours=hours), until=now)
    return {
        "since": report.since,
        "until": report.until,
        "hours": hours,
        "hours_choices": HOURS_CHOICES,
        "attribution_minutes": report.attribution_seconds // 60,
        "rows": [_row(v) for v in report.versions],
        "chart": exploration_chart(report.versions),
        "alerts": [v.version for v in report.versions if v.exploration_alert],
    }


@staff_member_required
@never_cache
@require_GET
def ops_discovery(request: HttpRequest) -> HttpResponse:
    """Policy health. Staff only: anyone else is sent to the admin's sign-in. ``?hours=``
    1, 24 (the default) or 168: the page opens on the last day, a few seconds of aggregation
    at most even with 10M decisions in the log; the last 7 days is one click away."""
    try:
        hours = int(request.GET.get("hours", DEFAULT_HOURS))
    except ValueError:
        hours = DEFAULT_HOURS
    if hours not in HOURS_CHOICES:
        hours = DEFAULT_HOURS
    context = {"nav": "ops", **discovery_context(now=timezone.now(), hours=hours)}
    return render(request, "discovery/ops/discovery.html", context)
