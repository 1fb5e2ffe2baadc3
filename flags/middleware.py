"""The anonymous rollout unit: a visitor who is not signed in keeps one unit (a random id in
a signed cookie, set once) so a percentage rollout shows them the same side on every request."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from flags.services import UNIT_COOKIE, UNIT_COOKIE_MAX_AGE, UNIT_COOKIE_SALT


class RolloutUnitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Set only when an evaluation needed a unit the visitor did not have yet.
        if getattr(request, "rollout_unit_new", False):
            response.set_signed_cookie(
                UNIT_COOKIE,
                request.rollout_unit,  # type: ignore[attr-defined]
                salt=UNIT_COOKIE_SALT,
                max_age=UNIT_COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
