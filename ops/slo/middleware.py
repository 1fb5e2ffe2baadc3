"""Request metrics per route and minute: count, 5xx and a latency histogram, tagged with
the cohort of each running rollout (the SLOs' and the rollout gates' figures)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from flags.rollouts.cohorts import request_cohorts
from ops.slo.recorder import COHORTS, request_metrics_flusher_ensure, request_metrics_record

logger = logging.getLogger(__name__)

UNMATCHED = "unmatched"
# Routes that are not the application's traffic: the scraper's and the browser's icon.
SKIPPED_ROUTES = frozenset({"metrics", "favicon"})
# Counted, but never in a rollout's cohorts: the probes must not read the flags snapshot (the
# liveness answer asks no database), and no route means nothing a rollout changed.
UNTAGGED_ROUTES = frozenset({"health", "health-live", "health-ready", UNMATCHED})
_COHORT_ERROR_LOG_SECONDS = 60.0


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        static = "/" + settings.STATIC_URL.lstrip("/") if settings.STATIC_URL else ""
        self.static_prefix = static if static not in ("", "/") else ""
        self._cohort_error_logged = 0.0

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.static_prefix and request.path_info.startswith(self.static_prefix):
            return self.get_response(request)
        try:
            request_metrics_flusher_ensure()
        except Exception:  # no thread to spare: counts wait in the buffer, the request goes on
            logger.exception("request metrics: could not start the flusher thread")
        at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except BaseException:
            self._record(request, at=at, started=started, status=500)
            raise
        self._record(request, at=at, started=started, status=response.status_code)
        return response

    def _record(self, request: HttpRequest, *, at: datetime, started: float, status: int) -> None:
        # Counting a request must never break it.
        try:
            duration_ms = (time.perf_counter() - started) * 1000.0
            match = getattr(request, "resolver_match", None)
            # The resolved name only: a raw path would let any client create rows at will.
            route = match.view_name if match is not None else UNMATCHED
            if route in SKIPPED_ROUTES:
                return
            tags = [] if route in UNTAGGED_ROUTES else self._tags(request)
            request_metrics_record(route=route, at=at, duration_ms=duration_ms, status=status, tags=tags)
        except Exception:
            logger.exception("request metrics: could not count a request")

    def _tags(self, request: HttpRequest) -> list[tuple[str, str]]:
        try:
            pairs = request_cohorts(request)
            return [(str(flag), cohort) for flag, cohort in pairs if flag and cohort in COHORTS]
        except Exception:
            now = time.monotonic()
            if now - self._cohort_error_logged > _COHORT_ERROR_LOG_SECONDS:
                self._cohort_error_logged = now
                logger.exception("request metrics: request_cohorts failed; counted without cohorts")
            return []
