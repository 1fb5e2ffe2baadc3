"""The vectorized engine: ranking, determinism, and reloading only on a new corpus version."""

from __future__ import annotations

import numpy as np
import pytest

from runs.engine import (
    CorpusCache,
    StartupProfile,
    corpus_load,
    matches_rank,
    scores_compute,
    top_indices,
)
from runs.services import investor_create, investors_bulk_create
from runs.vocab import sector_mask

pytestmark = pytest.mark.django_db

AI_SEED_US = StartupProfile(
    sector_mask=sector_mask(["ai", "fintech"]), stage="seed", raise_amount=1_000_000, country="US"
)


def investor(name, **kw):
    base = {
        "name": name,
        "sectors": ["ai"],
        "stages": ["seed"],
        "countries": ["US"],
        "check_min": 100_000,
        "check_max": 2_000_000,
        "activity": 0.5,
    }
    return {**base, **kw}


def test_the_investor_that_fits_on_every_axis_ranks_first():
    investors_bulk_create(
        rows=[
            investor("wrong sector", sectors=["biotech"]),
            investor("perfect", sectors=["ai", "fintech"], activity=0.9),
            investor("wrong stage", sectors=["ai", "fintech"], stages=["growth"]),
            investor("too big", sectors=["ai", "fintech"], check_min=20_000_000, check_max=50_000_000),
            investor("elsewhere", sectors=["ai", "fintech"], countries=["JP"]),
        ]
    )
    ranked = matches_rank(corpus=corpus_load(), startup=AI_SEED_US, k=5)
    from runs.models import Investor

    names = {i.pk: i.name for i in Investor.objects.all()}
    order = [names[m.investor_id] for m in ranked]
    assert order[0] == "perfect"
    assert order[-1] == "wrong sector"
    assert [m.rank for m in ranked] == [1, 2, 3, 4, 5]
    assert all(ranked[i].score >= ranked[i + 1].score for i in range(4))
    assert "Invests in ai, fintech" in ranked[0].reasons
    assert any("fits a $1M raise" in r for r in ranked[0].reasons)
    assert "Very active investor (0.90)" in ranked[0].reasons


def test_scores_stay_between_zero_and_one():
    investors_bulk_create(rows=[investor(f"i{n}", activity=n / 20, sectors=["ai", "saas"][: n % 3]) for n in range(21)])
    scores = scores_compute(corpus=corpus_load(), startup=AI_SEED_US)
    assert scores.dtype == np.float32
    assert (scores >= 0).all() and (scores <= 1.0001).all()


def test_ties_are_broken_by_investor_id_so_ranking_is_deterministic():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.9, 0.1], dtype=np.float32)
    assert top_indices(scores=scores, k=3).tolist() == [1, 4, 0]
    assert top_indices(scores=scores, k=4).tolist() == [1, 4, 0, 2]
    assert top_indices(scores=scores, k=10).tolist() == [1, 4, 0, 2, 3, 5]
    rng = np.random.default_rng(3)
    many = rng.integers(0, 5, size=50_000).astype(np.float32)  # lots of ties
    first = top_indices(scores=many, k=100)
    assert first.tolist() == top_indices(scores=many.copy(), k=100).tolist()
    expected = sorted(range(len(many)), key=lambda i: (-many[i], i))[:100]
    assert first.tolist() == expected


def test_a_startup_without_data_still_gets_a_neutral_ranking():
    investors_bulk_create(rows=[investor("a", activity=0.2), investor("b", activity=0.8)])
    ranked = matches_rank(corpus=corpus_load(), startup=StartupProfile(sector_mask=0), k=10)
    assert len(ranked) == 2
    assert ranked[0].score > ranked[1].score  # only activity tells them apart


def test_an_empty_corpus_gives_no_matches():
    assert matches_rank(corpus=corpus_load(), startup=AI_SEED_US, k=50) == []


def test_the_corpus_is_reloaded_only_when_its_version_changes(django_assert_max_num_queries):
    investors_bulk_create(rows=[investor("a")])
    cache = CorpusCache()
    first = cache.get()
    with django_assert_max_num_queries(1):  # a version check, no reload
        again = cache.get()
    assert again is first
    assert cache.loads == 1

    investor_create(**investor("b"))
    fresh = cache.get()
    assert cache.loads == 2
    assert len(fresh) == 2
    assert fresh.version > first.version


def test_the_binary_column_loader_gives_the_same_arrays_as_the_row_loader():
    from runs import engine

    investors_bulk_create(
        rows=[
            investor(
                f"i{n}",
                sectors=["ai", "space", "travel"][: 1 + n % 3],
                activity=(n % 10) / 10,
                check_min=10**n,
                check_max=10 ** (n + 1),
            )
            for n in range(7, 1, -1)
        ]
    )
    fast = engine._columns_postgresql()
    plain = engine._columns_generic()
    assert fast is not None and plain is not None
    for a, b in zip(fast, plain, strict=True):
        assert np.array_equal(a, b)
    assert list(fast[0]) == sorted(fast[0])  # id order restored
