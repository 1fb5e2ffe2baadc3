"""The candidate catalog as every serving process holds it in memory (its serving copy): what a suggestion
request needs of the candidates, read from one snapshot instead of queried per request.

A suggestion scores a member's candidate set (the best ``CANDIDATES_PER_CATEGORY`` active
candidates of each category their interests map to) and shows the slate's names and
categories. Those rows are the same for every member and change rarely (the admin, a
discovery worker, a catalog load), so each process keeps them: per category, its best
candidates with their popularity, in the order they are logged; the fallback slate (the
most popular overall); and what a suggestion shows of each.

Freshness. Triggers on the candidate and category tables (migration 0007) give
``discovery_catalogstamp`` a new random version in every writing transaction, whoever
writes. A process reads the version at most once every ``DISCOVERY_CATALOG_CHECK_SECONDS``
(1 s) and reloads only when it changed, so a deactivated candidate stops being served
everywhere within about a second, and a request pays no query for the catalog. Random
versions, not a counter: two rolled-back writes never leave two catalogs behind one version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from discovery.configs import RankerPolicy
from discovery.models import Candidate, CatalogStamp

# How far the candidate set for one decision reaches (the best by popularity per category).
CANDIDATES_PER_CATEGORY = 50
# The fallback slate is at most a slate long: the policy's largest slate size.
FALLBACK_MAX = next(int(m.le) for m in RankerPolicy.model_fields["slate_size"].metadata if hasattr(m, "le"))


@dataclass(frozen=True, slots=True)
class Item:
    """What a suggestion shows of a candidate."""

    id: int
    name: str
    kind: str
    category_slug: str
    category_name: str

    @property
    def pk(self) -> int:
        return self.id


@dataclass(frozen=True, slots=True)
class Column:
    """One category's best candidates as two columns, in the logged order (scoring a member
    extends their list with the ids at once and multiplies the popularities in one pass)."""

    ids: tuple[int, ...]
    popularity: tuple[float, ...]


@dataclass(frozen=True)
class Catalog:
    stamp: int | None  # None: loaded while the stamp row was missing (reloaded at every check)
    # category id -> its best active candidates by popularity (highest first) then id: the
    # order a decision's candidate set is logged in.
    columns: dict[int, Column]
    # The fallback slate's candidates, (id, popularity): the most popular, then the most
    # recent, overall; at most FALLBACK_MAX.
    fallback: tuple[tuple[int, float], ...]
    items: dict[int, Item]  # every candidate above
    popularity: dict[int, float]  # every candidate above


class _State:
    def __init__(self) -> None:
        self.catalog: Catalog | None = None
        self.checked_at = float("-inf")
        self.lock = threading.Lock()


_state = _State()


def _check_seconds() -> float:
    return float(getattr(settings, "DISCOVERY_CATALOG_CHECK_SECONDS", 1.0))


def _stamp_read() -> int | None:
    """The stamp; None when its row is missing (a flushed table, until the next catalog write
    puts it back): then every check reloads."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT version FROM {CatalogStamp._meta.db_table} WHERE id = 1")  # noqa: S608 - model meta
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _load(stamp: int | None) -> Catalog:
    # Each row carries its category's slug and name (a join): a category committed between
    # two statements cannot leave a candidate without one.
    best = (
        Candidate.objects.filter(active=True)
        .annotate(
            rank=Window(RowNumber(), partition_by=F("category_id"), order_by=[F("popularity").desc(), F("id").asc()])
        )
        .filter(rank__lte=CANDIDATES_PER_CATEGORY)
        .order_by("category_id", "-popularity", "id")
        .values_list("id", "category_id", "popularity", "name", "kind", "category__slug", "category__name")
    )
    popular = (
        Candidate.objects.filter(active=True)
        .order_by("-popularity", "-published_at", "id")
        .values_list("id", "category_id", "popularity", "name", "kind", "category__slug", "category__name")[
            :FALLBACK_MAX
        ]
    )
    by_category: dict[int, list[tuple[int, float]]] = {}
    items: dict[int, Item] = {}
    popularity: dict[int, float] = {}

    def keep(pk: int, pop: float, name: str, kind: str, slug: str, category_name: str) -> None:
        items[pk] = Item(id=pk, name=name, kind=kind, category_slug=slug, category_name=category_name)
        popularity[pk] = float(pop)

    for pk, category_id, pop, name, kind, slug, category_name in best:
        by_category.setdefault(category_id, []).append((pk, float(pop)))
        keep(pk, pop, name, kind, slug, category_name)
    fallback = []
    for pk, _, pop, name, kind, slug, category_name in popular:
        fallback.append((pk, float(pop)))
        keep(pk, pop, name, kind, slug, category_name)
    return Catalog(
        stamp=stamp,
        fallback=tuple(fallback),
        items=items,
        popularity=popularity,
        columns={
            k: Column(ids=tuple(pk for pk, _ in v), popularity=tuple(p for _, p in v)) for k, v in by_category.items()
        },
    )


def catalog_current() -> Catalog:
    """This process's catalog, reloaded first if its stamp moved (checked at most once every
    ``DISCOVERY_CATALOG_CHECK_SECONDS``; 0 checks at every call)."""
    state = _state
    now = time.monotonic()
    catalog = state.catalog
    if catalog is not None and now - state.checked_at < _check_seconds():
        return catalog
    with state.lock:
        if state.catalog is not None and now - state.checked_at < _check_seconds():
            return state.catalog
        stamp = _stamp_read()
        if state.catalog is None or stamp is None or state.catalog.stamp != stamp:
            state.catalog = _load(stamp)
        state.checked_at = now
        return state.catalog


def catalog_clear() -> None:
    """Forget the catalog: the next call reloads it (tests)."""
    _state.catalog = None
    _state.checked_at = float("-inf")
