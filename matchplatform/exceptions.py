"""The one error hierarchy and the one DRF exception handler (DESIGN.md, house style 5).

Every error that leaves the API has the shape
``{"error": {"code": "...", "message": "...", "fields": {...}}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    code = "application_error"
    http_status: int = status.HTTP_400_BAD_REQUEST
    default_message = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.fields = fields or {}
        super().__init__(self.message)


class InvalidInput(ApplicationError):
    code = "invalid"
    http_status = status.HTTP_400_BAD_REQUEST
    default_message = "The input is not valid."


class NotFound(ApplicationError):
    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND
    default_message = "Not found."


class Forbidden(ApplicationError):
    code = "forbidden"
    http_status = status.HTTP_403_FORBIDDEN
    default_message = "You do not have permission to do this."


class Conflict(ApplicationError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT
    default_message = "The request conflicts with the current state."


class LeaseLost(ApplicationError):
    """A worker tried to finish a queue row whose lease it no longer holds."""

    code = "lease_lost"
    http_status = status.HTTP_409_CONFLICT
    default_message = "The lease on this item was lost; the result was dropped."


class ServiceUnavailable(ApplicationError):
    code = "unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = "The service is temporarily unavailable."


def error_body(*, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten_drf_detail(detail: Any) -> tuple[str, dict[str, Any]]:
    """Turn DRF's nested ``detail`` into (message, fields)."""
    if isinstance(detail, dict):
        fields: dict[str, Any] = {}
        for key, value in detail.items():
            items = value if isinstance(value, list) else [value]
            fields[str(key)] = [str(item) for item in items]
        non_field = fields.pop("non_field_errors", None)
        if non_field:
            return "; ".join(non_field), fields
        first = next(iter(fields.items()), None)
        message = f"{first[0]}: {first[1][0]}" if first and first[1] else "Invalid input."
        return message, fields
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail) or "Invalid input.", {}
    return str(detail), {}


def _first_code(codes: Any) -> str:
    """DRF nests error codes like its messages; the first one names the error."""
    while isinstance(codes, (dict, list)) and codes:
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return codes if isinstance(codes, str) and codes else "invalid"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(code=exc.code, message=exc.message, fields=exc.fields),
            status=exc.http_status,
        )
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            fields = {key: [str(m) for m in msgs] for key, msgs in exc.message_dict.items()}
            message = "Invalid input."
        else:
            fields = {}
            message = "; ".join(exc.messages)
        return Response(
            error_body(code="invalid", message=message, fields=fields),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(code="too_large", message="The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(
            error_body(code="bad_request", message="The request was malformed."), status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_default_handler(exc, context)
    if response is None:
        # Unexpected: let Django's 500 machinery log it, but answer in our shape.
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body(code="server_error", message="An unexpected error occurred."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    assert isinstance(exc, drf_exceptions.APIException)
    code = _first_code(exc.get_codes())
    message, fields = _flatten_drf_detail(exc.detail)
    if isinstance(exc, drf_exceptions.ParseError):
        code = "malformed"
    response.data = error_body(code=code, message=message, fields=fields)
    return response
