"""The one error hierarchy and the one DRF exception handler (DESIGN.md, house style 5).

Every error that leaves the API has the shape
``{"error": {"code": "...", "message": "...", "fields": {...}}}``, and renders whatever the
input was: messages that repeat a value lose its lone surrogates (``"\\udfff"``).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404
from psycopg_pool import PoolTimeout, TooManyRequests
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from matchplatform.text import surrogates_replace

logger = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    """Every ``error.code`` the API can answer with: the schema lists these, and every raise
    names one of them (DRF's own codes included, so a client can switch on the whole set)."""

    # Generic input and protocol errors.
    INVALID = "invalid"
    MALFORMED = "malformed"
    BAD_REQUEST = "bad_request"
    REQUIRED = "required"
    NULL = "null"
    BLANK = "blank"
    INVALID_TYPE = "invalid_type"
    INVALID_CHOICE = "invalid_choice"
    INVALID_PARAMETER = "invalid_parameter"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"
    MAX_LENGTH = "max_length"
    MIN_LENGTH = "min_length"
    MAX_VALUE = "max_value"
    MIN_VALUE = "min_value"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    # Who may do what.
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    BAD_CREDENTIALS = "bad_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    LOCKED_OUT = "locked_out"
    PERMISSION_DENIED = "permission_denied"
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"
    # Not found.
    NOT_FOUND = "not_found"
    RUN_NOT_FOUND = "run_not_found"
    PROPOSAL_NOT_FOUND = "proposal_not_found"
    MATCH_NOT_FOUND = "match_not_found"
    MEMBER_NOT_FOUND = "member_not_found"
    CONVERSATION_NOT_FOUND = "conversation_not_found"
    # State conflicts.
    CONFLICT = "conflict"
    LEASE_LOST = "lease_lost"
    RUN_NOT_READY = "run_not_ready"
    RUN_FAILED = "run_failed"
    PROPOSAL_CLOSED = "proposal_closed"
    NOT_A_VOTER = "not_a_voter"
    ALREADY_VOTED = "already_voted"
    ALREADY_MATCHED = "already_matched"
    ALREADY_ANSWERED = "already_answered"
    MATCH_CLOSED = "match_closed"
    MATCH_NOT_ACCEPTED = "match_not_accepted"
    CONVERSATION_CLOSED = "conversation_closed"
    SAME_MEMBER = "same_member"
    MEMBER_CONFLICT = "member_conflict"
    PROFILE_CONFLICT = "profile_conflict"
    USERNAME_TAKEN = "username_taken"
    WALLET_TAKEN = "wallet_taken"
    WALLET_ALREADY_LINKED = "wallet_already_linked"
    # A submitted URL that can never be fetched (refused inputs, not platform errors).
    INVALID_URL = "invalid_url"
    INVALID_SCHEME = "invalid_scheme"
    MISSING_HOST = "missing_host"
    CREDENTIALS_NOT_ALLOWED = "credentials_not_allowed"
    FORBIDDEN_HOST = "forbidden_host"
    HOST_UNRESOLVABLE = "host_unresolvable"
    FETCH_FAILED = "fetch_failed"
    # Sign-In with Ethereum.
    SIWE_MALFORMED = "siwe_malformed"
    SIWE_DOMAIN = "siwe_domain"
    SIWE_BAD_SIGNATURE = "siwe_bad_signature"
    SIWE_NONCE_UNKNOWN = "siwe_nonce_unknown"
    SIWE_NONCE_USED = "siwe_nonce_used"
    SIWE_NONCE_EXPIRED = "siwe_nonce_expired"
    SIWE_MESSAGE_EXPIRED = "siwe_message_expired"
    SIWE_NOT_YET_VALID = "siwe_not_yet_valid"
    SIWE_ISSUED_IN_FUTURE = "siwe_issued_in_future"
    # The platform itself.
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    SERVER_ERROR = "server_error"
    APPLICATION_ERROR = "application_error"


# The codes as a choice set (value, label), as the schema's ChoiceFields declare them: drf-spectacular
# names it ErrorCodeEnum wherever it appears (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
ERROR_CODE_CHOICES = [(c.value, c.value) for c in ErrorCode]


class ApplicationError(Exception):
    code: str = ErrorCode.APPLICATION_ERROR
    http_status: int = status.HTTP_400_BAD_REQUEST
    default_message = "The request could not be completed."
    # Seconds, sent as Retry-After (a 429 or a 503 says when to come back).
    retry_after: int | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            # ErrorCode(...) refuses a code outside the enumeration at the raise, in tests.
            self.code = ErrorCode(code)
        self.fields = fields or {}
        super().__init__(self.message)


class InvalidInput(ApplicationError):
    code = ErrorCode.INVALID
    http_status = status.HTTP_400_BAD_REQUEST
    default_message = "The input is not valid."


class NotFound(ApplicationError):
    code = ErrorCode.NOT_FOUND
    http_status = status.HTTP_404_NOT_FOUND
    default_message = "Not found."


class Forbidden(ApplicationError):
    code = ErrorCode.FORBIDDEN
    http_status = status.HTTP_403_FORBIDDEN
    default_message = "You do not have permission to do this."


class Conflict(ApplicationError):
    code = ErrorCode.CONFLICT
    http_status = status.HTTP_409_CONFLICT
    default_message = "The request conflicts with the current state."


class LeaseLost(ApplicationError):
    """A worker tried to finish a queue row whose lease it no longer holds."""

    code = ErrorCode.LEASE_LOST
    http_status = status.HTTP_409_CONFLICT
    default_message = "The lease on this item was lost; the result was dropped."


class ServiceUnavailable(ApplicationError):
    code = ErrorCode.UNAVAILABLE
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = "The service is temporarily unavailable."


class LockedOut(drf_exceptions.Throttled):
    """Too many failed sign-ins for this account or from this client (django-axes): 429 with
    Retry-After. A DRF exception, not an ApplicationError, because token authentication raises
    it inside DRF's authenticator loop, which leaves the request anonymous only for these."""

    default_code = ErrorCode.LOCKED_OUT.value

    def __init__(self) -> None:
        from matchplatform.authentication import lockout_message, lockout_seconds

        super().__init__(wait=lockout_seconds(), detail=lockout_message())


def error_body(*, code: ErrorCode | str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": surrogates_replace(message), "fields": surrogates_replace(fields or {})}}


def _messages_by_path(detail: Any, path: str = "") -> dict[str, list[str]]:
    """DRF's nested ``detail`` (a list item's errors, a nested serializer's) as flat
    ``{"field.0.sub": [messages]}``, so ``fields`` keeps one shape however deep the input."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            out.update(_messages_by_path(value, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {path: [str(item) for item in detail]} if detail else {}
        out = {}
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                out.update(_messages_by_path(item, f"{path}.{index}" if path else str(index)))
            elif item:
                out.setdefault(path, []).append(str(item))
        return out
    return {path: [str(detail)]}


def _flatten_drf_detail(detail: Any) -> tuple[str, dict[str, Any]]:
    """Turn DRF's nested ``detail`` into (message, fields)."""
    if isinstance(detail, dict):
        fields = _messages_by_path(detail)
        non_field = fields.pop("non_field_errors", None)
        if non_field:
            return "; ".join(non_field), fields
        first = next(iter(fields.items()), None)
        message = f"{first[0]}: {first[1][0]}" if first and first[1] else "Invalid input."
        return message, fields
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail) or "Invalid input.", {}
    return str(detail), {}


_KNOWN_CODES = frozenset(ErrorCode)


def _first_code(codes: Any) -> ErrorCode:
    """DRF nests error codes like its messages; the first one names the error. A code outside
    the enumeration (a DRF field code we do not list) answers as ``invalid``."""
    while isinstance(codes, (dict, list)) and codes:
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return ErrorCode(codes) if codes in _KNOWN_CODES else ErrorCode.INVALID


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(code=exc.code, message=exc.message, fields=exc.fields),
            status=exc.http_status,
            headers={"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None,
        )
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            fields = {key: [str(m) for m in msgs] for key, msgs in exc.message_dict.items()}
            message = "Invalid input."
        else:
            fields = {}
            message = "; ".join(exc.messages)
        return Response(
            error_body(code=ErrorCode.INVALID, message=message, fields=fields),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(code=ErrorCode.TOO_LARGE, message="The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(
            error_body(code=ErrorCode.BAD_REQUEST, message="The request was malformed."),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    elif isinstance(exc, OperationalError):
        # The database is out of reach or out of connections: the request may succeed later, so
        # a 503 with Retry-After, not a 500. A dry pool is expected under load (no traceback);
        # anything else is worth a line in the log.
        if isinstance(exc.__cause__, (PoolTimeout, TooManyRequests)):
            unavailable = ServiceUnavailable("No database connection was free in time; try again.")
        else:
            logger.warning("database unavailable: %s", exc)
            unavailable = ServiceUnavailable("The database cannot be reached just now; try again.")
        unavailable.retry_after = settings.DB_POOL_RETRY_AFTER_SECONDS
        return exception_handler(unavailable, context)

    response = drf_default_handler(exc, context)
    if response is None:
        # Unexpected: let Django's 500 machinery log it, but answer in our shape.
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body(code=ErrorCode.SERVER_ERROR, message="An unexpected error occurred."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    assert isinstance(exc, drf_exceptions.APIException)
    code = _first_code(exc.get_codes())
    message, fields = _flatten_drf_detail(exc.detail)
    if isinstance(exc, drf_exceptions.ParseError):
        code = ErrorCode.MALFORMED
    response.data = error_body(code=code, message=message, fields=fields)
    return response
