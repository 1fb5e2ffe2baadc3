"""Reads of discovery: a member's interests and the candidates scored for them."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import QuerySet

from discovery.models import Candidate, InterestCategory, UserInterest

# How far the candidate set for one decision reaches (the best by popularity per category).
CANDIDATES_PER_CATEGORY = 50


@dataclass(frozen=True)
class Scored:
    candidate_ids: list[int]
    scores: list[float]
    personal: bool  # False: the fallback slate (no interests, or nothing in their categories)


def user_interests_of(*, user: User) -> QuerySet[UserInterest]:
    return UserInterest.objects.filter(user=user).select_related("interest").order_by("interest__slug")


def candidates_scored_for_user(*, user: User, fallback_size: int) -> Scored:
    """The member's candidate set with a score each: a candidate of a category mapped to one
    of their interests scores that interest's affinity times its popularity (the best
    affinity when several map to it). With no interest or no such candidate, the fallback
    slate: the most popular active candidates overall, scored by popularity."""
    affinity = dict(UserInterest.objects.filter(user=user).values_list("interest_id", "affinity"))
    by_category: dict[int, float] = {}
    for interest_id, category_id in InterestCategory.objects.filter(interest_id__in=list(affinity)).values_list(
        "interest_id", "category_id"
    ):
        by_category[category_id] = max(by_category.get(category_id, 0.0), affinity[interest_id])
    ids: list[int] = []
    scores: list[float] = []
    for category_id, weight in sorted(by_category.items()):
        rows = (
            Candidate.objects.filter(category_id=category_id, active=True)
            .order_by("-popularity", "id")
            .values_list("id", "popularity")[:CANDIDATES_PER_CATEGORY]
        )
        for candidate_id, popularity in rows:
            ids.append(candidate_id)
            scores.append(round(weight * popularity, 6))
    if ids:
        return Scored(candidate_ids=ids, scores=scores, personal=True)
    return fallback_scored(size=fallback_size)


def fallback_scored(*, size: int) -> Scored:
    """The fallback slate's candidates: the most popular, then the most recent, overall."""
    rows = list(
        Candidate.objects.filter(active=True)
        .order_by("-popularity", "-published_at", "id")
        .values_list("id", "popularity")[:size]
    )
    return Scored(candidate_ids=[r[0] for r in rows], scores=[float(r[1]) for r in rows], personal=False)
