"""A bench-only middleware: ``X-Bench-Timing: <app ms>;<db ms>;<queries>;<pid>`` on every response.

App time runs from this middleware (first in the chain) to the rendered response, so it covers
session and user lookups, the view and JSON rendering; db time is the sum of the statements
the request executed (``connection.execute_wrapper``). What the client measures on top of it
is gunicorn, the socket and waiting for a free worker thread or a CPU."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from bench.common.db import queries_counted


class TimingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with queries_counted() as spent:
            response = self.get_response(request)
        app_ms = (time.perf_counter() - started) * 1000
        response["X-Bench-Timing"] = f"{app_ms:.3f};{spent.seconds * 1000:.3f};{spent.n};{os.getpid()}"
        return response
