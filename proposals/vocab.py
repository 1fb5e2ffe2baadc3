"""Member interests: a fixed vocabulary of at most 63, so a member's set is one bigint."""

from __future__ import annotations

from collections.abc import Iterable

INTERESTS: tuple[str, ...] = (
    "ai", "climate", "crypto", "design", "devtools", "education", "fintech", "gaming", "health",
    "hardware", "marketing", "music", "open-source", "product", "robotics", "saas", "science",
    "security", "space", "sports", "travel", "writing", "film", "food", "art", "biotech",
    "mobility", "energy", "community", "investing",
)  # fmt: skip

assert len(INTERESTS) <= 63 and len(set(INTERESTS)) == len(INTERESTS)
_INDEX = {name: i for i, name in enumerate(INTERESTS)}


def interest_mask(values: Iterable[str]) -> int:
    mask = 0
    for value in values:
        position = _INDEX.get(value)
        if position is not None:
            mask |= 1 << position
    return mask
