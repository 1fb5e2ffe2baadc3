"""Writes of discovery: the catalog, and (to come) members' interests, signals and decisions."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from discovery.catalog import DAY0
from discovery.models import Candidate, Category, Interest, InterestCategory


@dataclass(frozen=True)
class CatalogCounts:
    interests: int
    categories: int
    mappings: int
    candidates: int


def catalog_seed_day0() -> CatalogCounts:
    """Load the starter catalog (idempotent: a second run changes nothing and adds nothing)."""
    with transaction.atomic():
        for row in DAY0:
            interest, _ = Interest.objects.get_or_create(slug=row.interest, defaults={"name": row.interest_name})
            category, _ = Category.objects.get_or_create(slug=row.category, defaults={"name": row.category_name})
            InterestCategory.objects.get_or_create(interest=interest, category=category)
            Candidate.objects.get_or_create(
                name=row.candidate, category=category, defaults={"kind": row.kind, "popularity": row.popularity}
            )
    return CatalogCounts(
        interests=Interest.objects.count(),
        categories=Category.objects.count(),
        mappings=InterestCategory.objects.count(),
        candidates=Candidate.objects.count(),
    )
