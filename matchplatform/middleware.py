"""Refuse a request whose path or query string holds a NUL character, before any layer sees it.

No URL of this API or site can mean one, and PostgreSQL cannot store one in text: a NUL that
reached a layer writing the request down (django-axes records every failed sign-in with its
path and query) made that insert fail and answer 500 instead of a refusal.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase, JsonResponse

from matchplatform.exceptions import ErrorCode, error_body


class NulCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            return JsonResponse(
                error_body(code=ErrorCode.BAD_REQUEST, message="The URL must not contain a NUL character."),
                status=400,
            )
        return self.get_response(request)
