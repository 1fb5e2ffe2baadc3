"""A web process's database pool running dry answers 503 with ``Retry-After``, never 500.

Django takes a connection from the pool (``OPTIONS["pool"]``) the first time a request
needs one, wherever that is: the session or user lookup in a middleware, a DRF view, a
plain view, a template. When no connection frees up within ``DB_POOL_TIMEOUT``, psycopg's
``PoolTimeout`` surfaces as Django's ``OperationalError`` there, and each layer turns it into
its own 500: the middleware wrapper that caught it, Django's handler500 (or the technical
500 page under ``DEBUG``), DRF's exception handler. So the exhaustion is recorded where it
happens, in ``matchplatform.postgresql``'s ``get_new_connection``, on the request running in
this thread, and ``PoolExhaustedMiddleware`` (first in ``MIDDLEWARE``, so it sees every inner
layer's response) answers 503 for such a request whatever error response it was given.

Once a request has waited out the timeout, its later attempts (an outer middleware saving
the session, the debug page showing the user) fail at once instead of waiting again.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from matchplatform.exceptions import ErrorCode, error_body


@dataclass
class _RequestPoolState:
    exhausted: bool = False


# Set by the middleware for the request this thread (gthread, runserver) is serving; None
# outside a request (commands, Celery tasks), where nothing is recorded or cut short.
_request_state: ContextVar[_RequestPoolState | None] = ContextVar("matchplatform_request_pool", default=None)


def pool_exhaustion_record() -> None:
    state = _request_state.get()
    if state is not None:
        state.exhausted = True


def pool_exhausted_in_request() -> bool:
    state = _request_state.get()
    return state is not None and state.exhausted


def unavailable_response() -> JsonResponse:
    return JsonResponse(
        error_body(
            code=ErrorCode.UNAVAILABLE,
            message="The service is busy: no database connection was free in time. Try again shortly.",
        ),
        status=503,
        headers={"Retry-After": str(settings.DB_POOL_RETRY_AFTER_SECONDS)},
    )


class PoolExhaustedMiddleware:
    """Outermost middleware: a request that could not get a database connection in time
    answers 503 (``ErrorCode.UNAVAILABLE``, ``Retry-After``) instead of the 5xx an inner
    layer made of it; a request that coped (a cached answer, a health report) keeps its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        state = _RequestPoolState()
        token = _request_state.set(state)
        try:
            response = self.get_response(request)
        finally:
            _request_state.reset(token)
        if not state.exhausted:
            return response
        if response.status_code == 503:
            # A view that answered its own 503 (health, reporting the database down) keeps it.
            response.headers.setdefault("Retry-After", str(settings.DB_POOL_RETRY_AFTER_SECONDS))
            return response
        return unavailable_response() if response.status_code >= 500 else response
