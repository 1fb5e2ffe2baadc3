"""Reads of discovery: the interest catalog, a member's interests, the candidates scored for
them, and the member's own signals and decisions (every member read filtered by the member:
another member's rows are never read, let alone answered)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.contrib.auth.models import User
from django.db.models import QuerySet

from discovery.models import IntentSignal, Interest, InterestCategory, LearningEvent, UserInterest
from discovery.serving import Catalog, catalog_current
from matchplatform.exceptions import NotFound
from ops.db import prepared_rows

T = TypeVar("T")


@dataclass(frozen=True)
class Scored:
    candidate_ids: list[int]
    scores: list[float]
    personal: bool  # False: the fallback slate (no interests, or nothing in their categories)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a member's rows, newest first, and the ``before`` of the next (None: last)."""

    results: list[T]
    next_before: int | None


def user_interests_of(*, user: User) -> QuerySet[UserInterest]:
    return UserInterest.objects.filter(user=user).select_related("interest").order_by("interest__slug")


# --- the catalog and my interests ----------------------------------------------------------------


def interests_catalog(*, by_name: bool = False) -> QuerySet[Interest]:
    """The interests a member can pick (slug and name only), by slug, or by name for a page
    that shows them to people (the slug breaks ties, so the order is stable)."""
    ordering = ("name", "slug") if by_name else ("slug",)
    return Interest.objects.order_by(*ordering).only("pk", "slug", "name")


def interest_slugs_known(*, slugs: Collection[str]) -> set[str]:
    """Which of these slugs the catalog has (no query for none)."""
    if not slugs:
        return set()
    return set(Interest.objects.filter(slug__in=list(slugs)).values_list("slug", flat=True))


def interests_of_user_by_slug(*, user: User) -> dict[str, float]:
    """The member's interests: slug -> affinity (0..1), by slug; one query."""
    rows = UserInterest.objects.filter(user=user).order_by("interest__slug")
    return dict(rows.values_list("interest__slug", "affinity"))


def category_weights_of(*, user_id: int) -> dict[int, float]:
    """category id -> the member's weight for it: the best affinity among their interests that
    map to it. One small query (by the member's interests index)."""
    sql = f"""
        SELECT ic.category_id, MAX(ui.affinity)
        FROM {UserInterest._meta.db_table} ui
        JOIN {InterestCategory._meta.db_table} ic ON ic.interest_id = ui.interest_id
        WHERE ui.user_id = %s
        GROUP BY ic.category_id
    """  # noqa: S608 - table names come from model meta, values are parameters
    return {int(category_id): float(weight) for category_id, weight in prepared_rows(sql, [user_id])}


def candidates_scored_for_user(*, user: User, fallback_size: int, catalog: Catalog | None = None) -> Scored:
    """The member's candidate set with a score each: a candidate of a category mapped to one
    of their interests scores that interest's affinity times its popularity (the best
    affinity when several map to it). With no interest or no such candidate, the fallback
    slate: the most popular active candidates overall, scored by popularity.

    The set is the best ``CANDIDATES_PER_CATEGORY`` active candidates of each of those
    categories by popularity, in the order it is logged in: by category id, then popularity
    (highest first), then id. It serves every suggestion request, so the candidates come from
    the process's catalog (discovery.serving) and the one query is the member's weights."""
    catalog = catalog or catalog_current()
    weights = category_weights_of(user_id=user.pk)
    ids: list[int] = []
    scores: list[float] = []
    for category_id in sorted(weights):
        column = catalog.columns.get(category_id)
        if column is not None:
            weight = weights[category_id]
            ids.extend(column.ids)
            scores.extend([round(weight * popularity, 6) for popularity in column.popularity])
    if not ids:
        return fallback_scored(size=fallback_size, catalog=catalog)
    return Scored(candidate_ids=ids, scores=scores, personal=True)


def fallback_scored(*, size: int, catalog: Catalog | None = None) -> Scored:
    """The fallback slate's candidates: the most popular, then the most recent, overall."""
    rows = (catalog or catalog_current()).fallback[:size]
    return Scored(candidate_ids=[r[0] for r in rows], scores=[r[1] for r in rows], personal=False)


# --- my signals and decisions ------------------------------------------------------------------


def signal_created_at(*, user: User, signal_id: int) -> datetime:
    """When the member's signal was stored (its database default, read back where the
    database did not return it on insert)."""
    return IntentSignal.objects.filter(user=user).values_list("created_at", flat=True).get(pk=signal_id)


def signals_page_for_user(*, user: User, limit: int, before: int | None) -> Page[dict[str, Any]]:
    """A page of the member's own signals, newest first (ids below ``before`` when given): one
    query, reading one row past the page to know whether another follows."""
    rows = IntentSignal.objects.filter(user=user)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    page = list(
        rows.order_by("-pk").values("id", "candidate_id", "kind", "decision__decision_id", "created_at")[: limit + 1]
    )
    results: list[dict[str, Any]] = [
        {
            "id": r["id"],
            "candidate": r["candidate_id"],
            "kind": r["kind"],
            "decision_id": r["decision__decision_id"],
            "created_at": r["created_at"],
        }
        for r in page[:limit]
    ]
    return Page(results=results, next_before=page[limit - 1]["id"] if len(page) > limit else None)


# What a member is shown of a decision of theirs (not the candidate set, the distribution, the
# seed or the policy's context: those are for evaluation).
DECISION_FIELDS = (
    "id",
    "decision_id",
    "surface",
    "policy_version",
    "decided_at",
    "slate",
    "chosen_id",
    "explored",
    "reward",
    "rewarded_at",
    "p_exp",
    "randomized",
)


def decisions_page_for_user(*, user: User, limit: int, before: int | None) -> Page[LearningEvent]:
    """A page of the member's own decisions, newest first (ids below ``before`` when given),
    with only ``DECISION_FIELDS`` loaded: one query, one row past the page read."""
    rows = LearningEvent.objects.filter(user=user)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    page = list(rows.order_by("-pk").only(*DECISION_FIELDS)[: limit + 1])
    return Page(results=page[:limit], next_before=page[limit - 1].pk if len(page) > limit else None)


def decision_for_user(*, user: User, decision_id: uuid.UUID) -> LearningEvent:
    """One of the member's own decisions (``DECISION_FIELDS`` loaded). Another member's
    decision and a missing one are the same NotFound."""
    event = LearningEvent.objects.filter(user=user, decision_id=decision_id).only(*DECISION_FIELDS).first()
    if event is None:
        raise NotFound("No such decision.")
    return event
