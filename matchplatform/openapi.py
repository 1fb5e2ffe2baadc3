"""Schema pieces every API module shares: the one error shape and its responses.

Each view declares the statuses its own logic can answer with ``error_responses(...)``, and
``AutoSchema`` adds those the layers around every view can answer with, so the schema lists
400/401/403/404/409/413/415/429/503 with the error shape and its enumerated codes instead of
only the happy path.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication

from matchplatform.exceptions import ErrorCode


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[c.value for c in ErrorCode], help_text="What went wrong, for programs.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    # The metaclass pops declared fields, so this does not shadow Serializer.fields at run time.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per input field, what is wrong with it.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# What each status means when a view does not say more.
_DEFAULT_DESCRIPTIONS = {
    400: "The input is not valid (the error names the field).",
    401: "Not signed in: no session and no token, or a token that is not valid.",
    403: "Signed in, but not allowed to do this.",
    404: "No such object, or not yours.",
    405: "Method not allowed.",
    409: "The object's state does not allow this.",
    413: "The request body is too large.",
    415: "The body is not application/json.",
    429: "Too many requests or failed sign-ins from this client; see Retry-After.",
    503: "Temporarily unavailable (database busy); see Retry-After.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(ErrorSerializer, ...)}`` for each status; a keyword
    ``d409="..."`` overrides one status's description."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=descriptions.get(f"d{code}", _DEFAULT_DESCRIPTIONS[code]))
        for code in statuses
    }


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the errors any operation can answer with because of the
    layers around its view, whatever the view declares:

    - every operation: 503 (the database pool ran dry);
    - an operation that authenticates: 401 (a wrong token is refused even where anonymous
      callers are welcome) and 429 (a client locked out by failed sign-ins);
    - an operation with a body: 400 (malformed JSON), 413 (too large) and 415 (not JSON);
    - an unsafe method with session authentication: 403 (the CSRF check);
    - a throttled view: 429.

    A view's own declaration of a status wins; these only fill the gaps."""

    def _implicit_errors(self) -> list[int]:
        statuses = [503]
        authentication = list(getattr(self.view, "authentication_classes", []))
        if authentication:
            statuses += [401, 429]
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            statuses += [400, 413, 415]
        if self.method not in ("GET", "HEAD", "OPTIONS") and any(
            issubclass(auth, SessionAuthentication) for auth in authentication
        ):
            statuses.append(403)
        if getattr(self.view, "throttle_classes", None):
            statuses.append(429)
        return sorted(set(statuses))

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status, response in error_responses(*self._implicit_errors()).items():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(response, str(status), direction=direction)
        return responses
