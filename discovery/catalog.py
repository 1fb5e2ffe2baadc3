"""The Day-0 starter catalog (the runbook's counts: six interests, six categories, six
mappings, six candidates). Interests are slugs of the members' vocabulary (proposals.vocab)."""

from __future__ import annotations

from typing import NamedTuple


class Starter(NamedTuple):
    interest: str
    interest_name: str
    category: str
    category_name: str
    candidate: str
    kind: str
    popularity: float


DAY0: tuple[Starter, ...] = (
    Starter("ai", "AI", "ai-tools", "AI tools", "Model evaluation workbench", "listing", 0.62),
    Starter("climate", "Climate", "climate-tech", "Climate tech", "Carbon accounting cohort", "community", 0.48),
    Starter(
        "fintech", "Fintech", "fintech-services", "Fintech services", "Payments compliance review", "service", 0.55
    ),
    Starter("health", "Health", "health-services", "Health services", "Clinical pilot partners", "listing", 0.41),
    Starter("education", "Education", "learning", "Learning", "Founder finance workshop", "event", 0.37),
    Starter(
        "devtools",
        "Developer tools",
        "developer-tools",
        "Developer tools",
        "Open-source maintainers' meetup",
        "event",
        0.51,
    ),
)
