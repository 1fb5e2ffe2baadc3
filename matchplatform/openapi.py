"""Schema pieces every API module shares: the one error shape and its responses.

Each view declares every status it can answer with ``error_responses(...)``, so the schema
lists 400/401/403/404/409/413/415/429/503 with the error shape and its enumerated codes
instead of only the happy path.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

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
    401: "Not signed in (no session, no valid token).",
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
