"""Reads of discovery: a member's interests and the candidates scored for them."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F, Max, QuerySet, Window
from django.db.models.functions import RowNumber

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
    slate: the most popular active candidates overall, scored by popularity.

    The set is the best ``CANDIDATES_PER_CATEGORY`` active candidates of each of those
    categories by popularity, in the order it is logged in: by category id, then popularity
    (highest first), then id. It serves every suggestion request, so it is one statement on
    PostgreSQL (per category, a LIMIT over its active candidates found by index) and two
    elsewhere, whatever the number of categories."""
    if connection.vendor == "postgresql":
        rows = _scored_rows_postgresql(user_id=user.pk)
    else:
        rows = _scored_rows_generic(user_id=user.pk)
    if not rows:
        return fallback_scored(size=fallback_size)
    return Scored(
        candidate_ids=[candidate_id for candidate_id, _, _ in rows],
        scores=[round(weight * popularity, 6) for _, weight, popularity in rows],
        personal=True,
    )


def _scored_rows_postgresql(*, user_id: int) -> list[tuple[int, float, float]]:
    """(candidate id, the category's weight, popularity) in the logged order, one round trip."""
    sql = f"""
        WITH weights AS (
            SELECT ic.category_id, max(ui.affinity) AS weight
            FROM {UserInterest._meta.db_table} ui
            JOIN {InterestCategory._meta.db_table} ic ON ic.interest_id = ui.interest_id
            WHERE ui.user_id = %s
            GROUP BY ic.category_id
        )
        SELECT c.id, w.weight, c.popularity
        FROM weights w
        CROSS JOIN LATERAL (
            SELECT id, popularity FROM {Candidate._meta.db_table}
            WHERE category_id = w.category_id AND active
            ORDER BY popularity DESC, id
            LIMIT %s
        ) c
        ORDER BY w.category_id, c.popularity DESC, c.id
    """  # noqa: S608 - table names come from model meta, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, CANDIDATES_PER_CATEGORY])
        return cursor.fetchall()  # bigint, float8, float8: int, float, float already


def _scored_rows_generic(*, user_id: int) -> list[tuple[int, float, float]]:
    """The same rows with the ORM: the best affinity per category, then each category's best
    candidates ranked by a window function."""
    by_category = dict(
        InterestCategory.objects.filter(interest__members__user_id=user_id)
        .values("category_id")
        .annotate(weight=Max("interest__members__affinity"))
        .values_list("category_id", "weight")
    )
    if not by_category:
        return []
    rows = (
        Candidate.objects.filter(category_id__in=list(by_category), active=True)
        .annotate(
            rank=Window(RowNumber(), partition_by=F("category_id"), order_by=[F("popularity").desc(), F("id").asc()])
        )
        .filter(rank__lte=CANDIDATES_PER_CATEGORY)
        .order_by("category_id", "-popularity", "id")
        .values_list("id", "category_id", "popularity")
    )
    return [(candidate_id, by_category[category_id], popularity) for candidate_id, category_id, popularity in rows]


def fallback_scored(*, size: int) -> Scored:
    """The fallback slate's candidates: the most popular, then the most recent, overall."""
    rows = list(
        Candidate.objects.filter(active=True)
        .order_by("-popularity", "-published_at", "id")
        .values_list("id", "popularity")[:size]
    )
    return Scored(candidate_ids=[r[0] for r in rows], scores=[float(r[1]) for r in rows], personal=False)
