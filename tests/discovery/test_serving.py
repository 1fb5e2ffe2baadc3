"""The serving catalog (discovery.serving): suggestions read candidates from a per-process copy
that database triggers keep honest. Every write to candidates or categories, whoever makes
it (the ORM, a bulk update, raw SQL), moves the stamp; a rolled-back write leaves the stamp it
found; a process serves a write within its check interval and queries nothing for the
catalog in between."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from discovery.models import Candidate, CatalogStamp, Category
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.services import catalog_seed_day0, suggestions_for_user, user_interests_set
from discovery.serving import CANDIDATES_PER_CATEGORY, catalog_current
from flags.config.services import config_set
from flags.models import Flag

pytestmark = pytest.mark.django_db


def stamp() -> int:
    return CatalogStamp.objects.get(pk=1).version


@pytest.fixture
def member(django_user_model):
    catalog_seed_day0()
    for name in (LEARNING_ENABLED, MARKETPLACE_SUGGEST):
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})
    config_set("ranker.policy", {"epsilon": 0.0, "slate_size": 5}, reason="no exploration for this test")
    member = django_user_model.objects.create_user(username="served", password="pw-served-pass")
    user_interests_set(user=member, affinities={"ai": 1.0})
    return member


def test_every_kind_of_write_moves_the_stamp():
    ai = Category.objects.create(slug="stamped", name="Stamped")
    seen = [stamp()]

    def moved() -> None:
        now = stamp()
        assert now not in seen
        seen.append(now)

    candidate = Candidate.objects.create(name="one", category=ai, popularity=0.5)
    moved()
    candidate.popularity = 0.7
    candidate.save()
    moved()
    Candidate.objects.filter(category=ai).update(active=False)  # a queryset update: no signal
    moved()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE discovery_candidate SET name = 'raw' WHERE id = %s", [candidate.pk])
    moved()
    Category.objects.filter(pk=ai.pk).update(name="Renamed")
    moved()
    candidate.delete()
    moved()


def test_a_rolled_back_write_leaves_the_stamp_it_found():
    ai = Category.objects.create(slug="kept", name="Kept")
    before = stamp()
    with pytest.raises(RuntimeError), transaction.atomic():
        Candidate.objects.create(name="never", category=ai, popularity=0.9)
        assert stamp() != before
        raise RuntimeError("roll back")
    assert stamp() == before


def test_a_rolled_back_catalog_is_not_served_after_another_write(member):
    """Two writes that both roll back must not leave two catalogs behind one stamp: the process
    loaded the first, the second must not find the first's stamp and keep it."""
    ai = Category.objects.get(slug="ai-tools")
    for name in ("first", "second"):
        with pytest.raises(RuntimeError), transaction.atomic():
            Candidate.objects.create(name=f"rolled back {name}", category=ai, popularity=1.0)
            served = suggestions_for_user(user=member)
            assert served.candidates[0].name == f"rolled back {name}"
            raise RuntimeError("roll back")
    assert all(not c.name.startswith("rolled back") for c in suggestions_for_user(user=member).candidates)


def test_a_write_is_served_within_the_check_interval_and_costs_no_query_before(member, settings):
    settings.DISCOVERY_CATALOG_CHECK_SECONDS = 0.5
    leader = suggestions_for_user(user=member).candidates[0]
    catalog_current()
    with CaptureQueriesContext(connection) as ctx:
        catalog_current()
    assert not ctx.captured_queries  # within the interval: no stamp read, no load
    Candidate.objects.filter(pk=leader.pk).update(active=False)
    still = catalog_current()  # within the interval: the copy this process holds
    assert leader.pk in still.items
    time.sleep(0.6)
    with CaptureQueriesContext(connection) as ctx:
        fresh = catalog_current()
    assert any("discovery_catalogstamp" in q["sql"] for q in ctx.captured_queries)
    assert leader.pk not in fresh.items
    assert leader.pk not in [c.pk for c in suggestions_for_user(user=member).candidates]
    with CaptureQueriesContext(connection) as ctx:
        again = catalog_current()
    assert again is fresh and not ctx.captured_queries


def test_the_catalog_keeps_each_categorys_best_and_the_fallback_in_order():
    catalog_seed_day0()
    ai = Category.objects.get(slug="ai-tools")
    Candidate.objects.bulk_create(
        [Candidate(name=f"ai {i}", category=ai, popularity=(i % 70) / 100) for i in range(CANDIDATES_PER_CATEGORY + 30)]
    )
    Candidate.objects.create(name="inactive", category=ai, popularity=1.0, active=False)
    catalog = catalog_current()
    expected = list(
        Candidate.objects.filter(category=ai, active=True)
        .order_by("-popularity", "id")
        .values_list("id", "popularity")[:CANDIDATES_PER_CATEGORY]
    )
    column = catalog.columns[ai.pk]
    assert list(zip(column.ids, column.popularity, strict=True)) == expected
    fallback = list(
        Candidate.objects.filter(active=True)
        .order_by("-popularity", "-published_at", "id")
        .values_list("id", flat=True)
    )
    assert [pk for pk, _ in catalog.fallback] == fallback[: len(catalog.fallback)]
    item = catalog.items[expected[0][0]]
    assert (item.category_slug, item.category_name) == ("ai-tools", "AI tools")


def test_a_missing_stamp_row_reloads_at_every_check_and_the_next_write_puts_it_back(member):
    leader = suggestions_for_user(user=member).candidates[0]
    CatalogStamp.objects.all().delete()  # a flushed table, a data-only restore
    with connection.cursor() as cursor:  # a write the triggers must still see
        cursor.execute("UPDATE discovery_candidate SET active = FALSE WHERE id = %s", [leader.pk])
    assert CatalogStamp.objects.filter(pk=1).exists()  # the write put the row back
    assert leader.pk not in [c.pk for c in suggestions_for_user(user=member).candidates]
    CatalogStamp.objects.all().delete()
    Candidate.objects.filter(pk=leader.pk).update(active=True)
    CatalogStamp.objects.all().delete()  # gone again, and the write above not stamped
    assert catalog_current().stamp is None and leader.pk in catalog_current().items  # reloaded anyway


@pytest.mark.django_db(transaction=True)
def test_a_candidate_deleted_within_the_check_interval_is_decided_around(member, settings):
    """A process trusts its catalog for the check interval; a candidate deleted (not
    deactivated) meanwhile cannot be logged as chosen (the foreign key, checked as the
    autocommitted INSERT commits): the catalog is reloaded and the decision made again."""
    ai = Category.objects.get(slug="ai-tools")
    doomed = Candidate.objects.create(name="soon deleted", category=ai, popularity=1.0)
    assert catalog_current().items[doomed.pk]  # this process now holds it
    settings.DISCOVERY_CATALOG_CHECK_SECONDS = 3600.0
    doomed_pk = doomed.pk
    doomed.delete()  # never served: nothing protects it
    from discovery.models import LearningEvent

    assert doomed_pk in catalog_current().items  # still held: the interval is not over
    served = suggestions_for_user(user=member)
    assert served.decision_id and doomed_pk not in [c.pk for c in served.candidates]
    assert LearningEvent.objects.get(decision_id=served.decision_id).chosen_id != doomed_pk
    assert doomed_pk not in catalog_current().items  # reloaded
