"""The one check of the API's error shape: ``{"error": {"code", "message", "fields"}}``."""

from __future__ import annotations

from typing import Any

from matchplatform.exceptions import ErrorCode


def assert_error_shape(response: Any, status: int, code: str | None = None, *, field: str | None = None) -> dict:
    """The response is an error of this status in the API's one shape, with a message; its
    code (when given) is this one and a member of ``ErrorCode``; ``field`` (when given) is
    among the fields it names. Returns the error object."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, body
    assert error["message"], body
    assert error["code"] in set(ErrorCode), body
    if code is not None:
        assert error["code"] == code, body
    if field is not None:
        assert field in error["fields"], body
    return error
