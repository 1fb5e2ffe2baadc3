"""The API's one JSON parser: a JSON Content-Type, a small body, shallow nesting, text only.

A body is read only when it says it is JSON (``application/json`` or ``application/*+json``);
anything else is a 415. A browser sends a cross-site request without asking the site first only
with a form's types (``text/plain``, form encodings), so no other site can make a visitor's
browser post JSON here, with or without their cookies.

Every request body this API takes is a few fields (a URL, a vote, a message, a signed
sign-in message), so anything large or deeply nested is refused before ``json`` sees it:
the stdlib decoder recurses in C and a body of 100,000 ``[`` can overflow the C stack
when the interpreter's recursion limit has been raised by a library. A string holding a lone
surrogate (``"\\udfff"``) is valid JSON but not text (no database or encoder takes it): a 400.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from rest_framework.exceptions import APIException, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.utils.mediatypes import _MediaType

from matchplatform.text import surrogates_find

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32


class BodyTooLarge(APIException):
    # A DRF exception (not ours): DRF imports this module while our handler module is
    # still loading; the handler maps it to the one error shape all the same.
    status_code = 413
    default_code = "too_large"
    default_detail = "The request body is too large."


def json_depth_exceeds(*, body: bytes, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` (brackets inside strings ignored)."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


class StrictJSONParser(JSONParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        # Imported here: matchplatform.exceptions reads DRF's settings, which import this module.
        from matchplatform.exceptions import ErrorCode

        body = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The request body must be at most {MAX_BODY_BYTES // 1024} KB.")
        if json_depth_exceeds(body=body, limit=MAX_DEPTH):
            raise ParseError("JSON parse error - the body is nested too deeply.", code=ErrorCode.MALFORMED)
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.", code=ErrorCode.MALFORMED) from None
        if surrogates_find(data):
            raise ParseError(
                "JSON parse error - a string holds a lone surrogate (\\ud800-\\udfff), which is not text.",
                code=ErrorCode.MALFORMED,
            )
        return data


class JSONContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, where ``application/<anything>+json`` (RFC 6839) is JSON too, and a
    Content-Type with a wildcard (which DRF would match to any parser) is no type at all."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        media = _MediaType(request.content_type or "")
        main_type, sub_type = media.main_type.strip().lower(), media.sub_type.strip().lower()
        if "*" in main_type or "*" in sub_type:
            return None
        if main_type == "application" and sub_type.endswith("+json"):
            return next((p for p in parsers if p.media_type == "application/json"), None)
        return super().select_parser(request, parsers)
