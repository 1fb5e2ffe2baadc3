"""The fixed vocabularies the engine scores over.

Each vocabulary has at most 63 entries so a set of them fits one signed 64-bit column
(a bitmask), which lets the engine compare a startup with a million investors in a few
vectorized operations.
"""

from __future__ import annotations

from collections.abc import Iterable

SECTORS: tuple[str, ...] = (
    "ai", "fintech", "healthtech", "biotech", "climate", "energy", "saas", "devtools",
    "security", "ecommerce", "marketplace", "consumer", "edtech", "proptech", "mobility",
    "logistics", "foodtech", "agtech", "gaming", "media", "hrtech", "legaltech", "insurtech",
    "crypto", "hardware", "robotics", "space", "iot", "govtech", "travel",
)  # fmt: skip

# Words in a page that point at a sector; the fetcher uses them to tag unknown startups.
SECTOR_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ai": ("ai", "artificial intelligence", "machine learning", "llm", "neural"),
    "fintech": ("fintech", "payments", "banking", "lending", "finance"),
    "healthtech": ("health", "patients", "clinic", "medical", "telehealth"),
    "biotech": ("biotech", "drug", "genomics", "therapeutics", "protein"),
    "climate": ("climate", "carbon", "emissions", "sustainability"),
    "energy": ("energy", "solar", "battery", "grid", "wind"),
    "saas": ("saas", "software", "platform", "subscription", "b2b"),
    "devtools": ("developer", "devtools", "api", "open source", "sdk"),
    "security": ("security", "cyber", "identity", "encryption", "fraud"),
    "ecommerce": ("ecommerce", "e-commerce", "shop", "retail", "checkout"),
    "marketplace": ("marketplace", "buyers", "sellers"),
    "consumer": ("consumer", "app", "social", "lifestyle"),
    "edtech": ("education", "learning", "students", "edtech", "courses"),
    "proptech": ("real estate", "property", "proptech", "rent"),
    "mobility": ("mobility", "vehicles", "ev", "transport", "cars"),
    "logistics": ("logistics", "shipping", "supply chain", "freight", "delivery"),
    "foodtech": ("food", "restaurant", "grocery", "meal"),
    "agtech": ("agriculture", "farm", "crop", "agtech"),
    "gaming": ("game", "gaming", "esports"),
    "media": ("media", "content", "video", "music", "creator"),
    "hrtech": ("hiring", "recruiting", "hr", "payroll", "talent"),
    "legaltech": ("legal", "law", "contracts", "compliance"),
    "insurtech": ("insurance", "insurtech", "claims"),
    "crypto": ("crypto", "blockchain", "web3", "defi", "token"),
    "hardware": ("hardware", "device", "chip", "semiconductor"),
    "robotics": ("robot", "robotics", "automation", "drone"),
    "space": ("space", "satellite", "orbit", "launch"),
    "iot": ("iot", "sensor", "connected devices"),
    "govtech": ("government", "public sector", "govtech", "civic"),
    "travel": ("travel", "hotel", "booking", "flights"),
}

STAGES: tuple[str, ...] = ("pre-seed", "seed", "series-a", "series-b", "series-c", "growth")

COUNTRIES: tuple[str, ...] = (
    "US", "CA", "MX", "BR", "AR", "CL", "CO", "GB", "IE", "FR", "DE", "NL", "BE", "ES", "PT",
    "IT", "CH", "AT", "SE", "NO", "DK", "FI", "PL", "CZ", "EE", "LT", "UA", "IL", "AE", "SA",
    "TR", "EG", "NG", "KE", "ZA", "IN", "SG", "ID", "VN", "TH", "MY", "PH", "JP", "KR", "CN",
    "HK", "TW", "AU", "NZ",
)  # fmt: skip

for _vocab in (SECTORS, STAGES, COUNTRIES):
    assert len(_vocab) <= 63 and len(set(_vocab)) == len(_vocab)


_INDEX = {vocab: {name: i for i, name in enumerate(vocab)} for vocab in (SECTORS, STAGES, COUNTRIES)}


def _mask(vocab: tuple[str, ...], values: Iterable[str]) -> int:
    index = _INDEX[vocab]
    mask = 0
    for value in values:
        position = index.get(value)
        if position is not None:
            mask |= 1 << position
    return mask


def sector_mask(values: Iterable[str]) -> int:
    return _mask(SECTORS, values)


def stage_mask(values: Iterable[str]) -> int:
    return _mask(STAGES, values)


def country_mask(values: Iterable[str]) -> int:
    return _mask(COUNTRIES, (value.upper() for value in values))
