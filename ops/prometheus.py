"""/metrics in the Prometheus text format, with prometheus_client's exposition.

Every figure is read from the database at each scrape (Postgres is the source of truth, and
several web processes answer /metrics: a counter kept in one process's memory would be that
process's alone). ops exports:

- ``matchplatform_queue_items{queue, status}``: rows queued, processing and dead, per queue;
- ``matchplatform_dead_letters_open{queue}``: dead letters not requeued;
- ``matchplatform_invariant_state{invariant, app}``: 0 ok (or not enough data), 1 warn,
  2 error (the check failed to run), 3 critical, from the results stored in the last minutes;
  ``matchplatform_invariant_value{invariant, app}``: each one's figure, when it has one;
- ``matchplatform_workers_alive`` / ``matchplatform_workers_stale``: workers by heartbeat;
- ``matchplatform_metrics_collector_up{collector}``: 0 when a collector failed this scrape
  (its families are left out; the others are still exported).

Other apps add families with ``prometheus_collector_register``, from their
``AppConfig.ready`` (as they register invariants). A collector is a function with no
arguments returning prometheus_client metric families, read from the database::

    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def rollout_metrics() -> Iterable[Metric]:
        stage = GaugeMetricFamily("matchplatform_rollout_stage", "Stage index.", labels=["rollout"])
        percent = GaugeMetricFamily("matchplatform_rollout_percent", "Percent served.", labels=["rollout"])
        decisions = CounterMetricFamily(
            "matchplatform_rollout_decisions", "Controller decisions.", labels=["rollout", "decision"]
        )  # exported as matchplatform_rollout_decisions_total
        for r in rollouts_running():
            stage.add_metric([r.name], r.stage_index)
            ...
        return [stage, percent, decisions]

    prometheus_collector_register(rollout_metrics, name="flags.rollouts")

Names start with ``matchplatform_``; a family name that an earlier collector already
exported is dropped (and logged), as Prometheus would refuse the whole scrape. A collector
that raises is logged and reported by ``matchplatform_metrics_collector_up``, never a 500.

Who may read: a staff member's session, or a scraper sending ``Authorization: Bearer
<OPS_METRICS_TOKEN>``. Anyone else gets 401 (or 403 when signed in without staff rights)
in the API's error shape.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from matchplatform.exceptions import ErrorCode, error_body

logger = logging.getLogger(__name__)

PrometheusCollector = Callable[[], Iterable[Metric]]

_COLLECTORS: dict[str, PrometheusCollector] = {}


def prometheus_collector_register(collector: PrometheusCollector, *, name: str | None = None) -> PrometheusCollector:
    """Export the families ``collector`` returns at every scrape. ``name`` (default: the
    function's module and name) identifies it in ``matchplatform_metrics_collector_up``;
    registering a name again replaces the collector. Returns the collector (usable as a
    decorator)."""
    key = name or f"{collector.__module__}.{collector.__qualname__}"
    _COLLECTORS[key] = collector
    return collector


def prometheus_collectors() -> dict[str, PrometheusCollector]:
    """ops' own collectors first, then the registered ones, by name."""
    return {**_BUILTIN, **_COLLECTORS}


# --- ops' own families -------------------------------------------------------------------------


def queue_metrics() -> list[Metric]:
    from ops.models import DeadLetter
    from ops.queue import queues_all
    from ops.selectors import queue_depths

    items = GaugeMetricFamily(
        "matchplatform_queue_items",
        "Rows of each lease queue by status (done rows not counted).",
        labels=["queue", "status"],
    )
    for queue, depths in sorted(queue_depths().items()):
        for status, count in sorted(depths.items()):
            items.add_metric([queue, status], count)
    letters = GaugeMetricFamily(
        "matchplatform_dead_letters_open", "Dead letters not requeued, per queue.", labels=["queue"]
    )
    open_letters = dict(
        DeadLetter.objects.filter(requeued_at__isnull=True)
        .values_list("queue")
        .annotate(n=Count("id"))
        .values_list("queue", "n")
    )
    for queue in sorted({q.label for q in queues_all()} | set(open_letters)):
        letters.add_metric([queue], open_letters.get(queue, 0))
    return [items, letters]


def invariant_metrics() -> list[Metric]:
    from ops.notify import invariant_severity
    from ops.selectors import invariant_results_latest

    state = GaugeMetricFamily(
        "matchplatform_invariant_state",
        "Latest stored state of each invariant: 0 ok or not enough data, 1 warn, 2 error (check failed), 3 critical.",
        labels=["invariant", "app"],
    )
    value = GaugeMetricFamily(
        "matchplatform_invariant_value", "Latest stored figure of each invariant.", labels=["invariant", "app"]
    )
    for outcome in sorted(invariant_results_latest(), key=lambda o: o.name):
        state.add_metric([outcome.name, outcome.app], invariant_severity(outcome.state))
        if outcome.value is not None:
            value.add_metric([outcome.name, outcome.app], outcome.value)
    return [state, value]


def worker_metrics() -> list[Metric]:
    from ops.selectors import workers_live, workers_stale

    alive = GaugeMetricFamily("matchplatform_workers_alive", "Workers whose heartbeat is recent.")
    alive.add_metric([], workers_live().count())
    stale = GaugeMetricFamily("matchplatform_workers_stale", "Workers whose heartbeat stopped without a clean exit.")
    stale.add_metric([], workers_stale().count())
    return [alive, stale]


_BUILTIN: dict[str, PrometheusCollector] = {
    "ops.queues": queue_metrics,
    "ops.invariants": invariant_metrics,
    "ops.workers": worker_metrics,
}


class PlatformCollector:
    """Runs every collector at each scrape; one that fails leaves out only its own families."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "matchplatform_metrics_collector_up",
            "1 when the collector answered this scrape, 0 when it failed.",
            labels=["collector"],
        )
        seen: set[str] = {up.name}
        for name, collector in prometheus_collectors().items():
            try:
                families = list(collector())
            except Exception:
                logger.exception("the metrics collector %s failed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            for family in families:
                if family.name in seen:
                    logger.warning("metrics collector %s exports %s again; dropped", name, family.name)
                    continue
                seen.add(family.name)
                yield family
        yield up


_REGISTRY = CollectorRegistry(auto_describe=False)
_REGISTRY.register(PlatformCollector())


def metrics_render() -> bytes:
    return generate_latest(_REGISTRY)


# --- the view ----------------------------------------------------------------------------------


def _error(status: int, code: ErrorCode, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(error_body(code=code, message=message), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def metrics_access_error(request: HttpRequest) -> JsonResponse | None:
    """None when the caller may read the metrics, else the error to answer."""
    token = _bearer_token(request)
    if token is not None:
        expected = str(settings.OPS_METRICS_TOKEN or "")
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return None
        return _error(
            401,
            ErrorCode.AUTHENTICATION_FAILED,
            "The metrics token is not valid.",
            WWW_Authenticate='Bearer realm="metrics", error="invalid_token"',
        )
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return _error(
            401,
            ErrorCode.NOT_AUTHENTICATED,
            "Authentication credentials were not provided.",
            WWW_Authenticate='Bearer realm="metrics"',
        )
    if not user.is_staff:
        return _error(403, ErrorCode.PERMISSION_DENIED, "Only staff may read the metrics.")
    return None


# No CSRF check: only GET and HEAD are answered, and a POST gets the 405 below in the API's shape.
@csrf_exempt
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _error(405, ErrorCode.METHOD_NOT_ALLOWED, f'Method "{request.method}" not allowed.', Allow="GET, HEAD")
    refused = metrics_access_error(request)
    if refused is not None:
        return refused
    response = HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
