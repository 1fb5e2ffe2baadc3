"""The API's one JSON parser: any Content-Type, a small body, shallow nesting.

Every request body this API takes is a few fields (a URL, a vote, a message, a signed
sign-in message), so anything large or deeply nested is refused before ``json`` sees it:
the stdlib decoder recurses in C and a body of 100,000 ``[`` can overflow the C stack
when the interpreter's recursion limit has been raised by a library.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

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
    media_type = "*/*"  # a body that is not JSON is a 400 in the error shape, not a 415

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The request body must be at most {MAX_BODY_BYTES // 1024} KB.")
        if json_depth_exceeds(body=body, limit=MAX_DEPTH):
            raise ParseError("JSON parse error - the body is nested too deeply.")
        import io

        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
