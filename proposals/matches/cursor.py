"""The feed's cursor: where the next page starts, as an opaque URL-safe token."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime

from proposals.matches.terms import CURSOR_MAX_CHARS, SORTS
from proposals.matches.terms import bad_parameter as _bad


def _aware(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError
    return parsed


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the sort key and id of the last item shown. For
    ``expiring_soon`` also the moment its first page split open pending matches from the
    rest (``as_of``), so a match that expires while the member pages stays where it was
    shown and does not come again in the second part."""

    sort: str
    segment: int  # expiring_soon: 0 = open pending matches, 1 = the rest; 0 otherwise
    key: datetime | float
    id: int
    as_of: datetime | None = None

    def encode(self) -> str:
        key = self.key.isoformat() if isinstance(self.key, datetime) else self.key
        payload: list[object] = [1, self.sort, self.segment, key, self.id]
        if self.as_of is not None:
            payload.append(self.as_of.isoformat())
        raw = json.dumps(payload, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str, *, sort: str) -> Cursor:
        message = "This cursor is not one the feed gave out; start again without it."
        if len(value) > CURSOR_MAX_CHARS:
            raise _bad("cursor", message)
        try:
            raw = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            if not isinstance(raw, list) or len(raw) not in (5, 6):
                raise ValueError
            version, cursor_sort, segment, key, item_id = raw[:5]
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise _bad("cursor", message) from None
        bad_id = type(item_id) is not int or not 0 < item_id < 2**63
        if version != 1 or cursor_sort not in SORTS or segment not in (0, 1) or bad_id:
            raise _bad("cursor", message)
        if cursor_sort != sort:
            raise _bad("cursor", f"This cursor belongs to sort={cursor_sort}; use it with that sort.")
        if (len(raw) == 6) != (sort == "expiring_soon"):
            raise _bad("cursor", message)
        try:
            parsed: datetime | float
            if sort == "compatibility":
                if type(key) not in (int, float) or not math.isfinite(key):
                    raise ValueError
                parsed = float(key)
            else:
                parsed = _aware(key)
            as_of = _aware(raw[5]) if len(raw) == 6 else None
        except (ValueError, OverflowError):
            raise _bad("cursor", message) from None
        return cls(sort=sort, segment=segment, key=parsed, id=item_id, as_of=as_of)
