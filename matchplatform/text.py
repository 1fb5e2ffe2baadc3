"""Lone surrogates: the code points a JSON body can carry (``"\\udfff"``) that no UTF-8 encoder
writes, so any text echoed back to a client (a validation message that repeats the input) must
lose them first, or rendering it fails. A dependency-free module: the renderer and the exception
handler both load while DRF itself is still importing."""

from __future__ import annotations

import re
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def surrogates_replace(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys included, nested in dicts, lists
    and tuples) replaced by U+FFFD; anything else as it is."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub(REPLACEMENT, value) if LONE_SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {surrogates_replace(k): surrogates_replace(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [surrogates_replace(item) for item in value]
    return value


def surrogates_find(value: Any) -> bool:
    """Whether any string in ``value`` (keys included, nested) holds a lone surrogate."""
    if isinstance(value, str):
        return LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(surrogates_find(k) or surrogates_find(v) for k, v in value.items())
    if isinstance(value, list):
        return any(surrogates_find(item) for item in value)
    return False
