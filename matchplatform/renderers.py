"""The API's JSON renderer: DRF's, written by orjson.

The same bytes as DRF's ``JSONRenderer`` for what the API returns (compact, UTF-8, datetimes in
ISO 8601 with ``Z`` for UTC, UUIDs as strings, U+2028/U+2029 escaped; a float in exponent form
is the same number without Python's padding zero, ``1e-7`` for ``1e-07``; NaN and infinity,
which DRF's strict mode refuses with an error, are written as ``null``), five to ten times
faster: on the matches feed DRF's encoder took a tenth of the request's CPU. Anything orjson
does not know (lazy translations, Decimals, querysets ...) goes through DRF's encoder, and an
indented response (``Accept: application/json; indent=4``) is DRF's own.

Any text renders: a lone surrogate (which no UTF-8 encoder writes, and which a validation message
can repeat from a JSON body's ``"\\udfff"``) is written as U+FFFD instead of failing the response."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

from matchplatform.text import surrogates_replace

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


class _SafeEncoder(JSONEncoder):
    """DRF's encoder, whose string conversions (a lazy translation, say) lose lone surrogates."""

    def default(self, obj: Any) -> Any:
        return surrogates_replace(super().default(obj))


_fallback = _SafeEncoder()


def _default(value: Any) -> Any:
    return _fallback.default(value)


class JSONRenderer(renderers.JSONRenderer):
    encoder_class = _SafeEncoder

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is not None:
            return super().render(surrogates_replace(data), accepted_media_type, renderer_context)
        try:
            out = orjson.dumps(data, default=_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # What orjson refuses (a lone surrogate, an int beyond 64 bits): DRF's encoder
            # decides, on the data with its surrogates replaced.
            return super().render(surrogates_replace(data), accepted_media_type, renderer_context)
        # A strict JavaScript subset, as DRF writes it.
        return out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
