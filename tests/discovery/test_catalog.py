"""The Day-0 starter catalog, and the constraints the discovery tables keep."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from discovery.models import Candidate, Category, Interest, InterestCategory, UserInterest
from discovery.services import catalog_seed_day0
from proposals.vocab import INTERESTS

pytestmark = pytest.mark.django_db


def test_the_seed_loads_the_runbooks_counts_and_a_second_run_adds_nothing():
    out = io.StringIO()
    call_command("seed_discovery", stdout=out)
    assert "6 interests, 6 categories, 6 mappings, 6 candidates" in out.getvalue()
    again = catalog_seed_day0()
    assert (again.interests, again.categories, again.mappings, again.candidates) == (6, 6, 6, 6)
    assert set(Interest.objects.values_list("slug", flat=True)) <= set(INTERESTS)  # the members' vocabulary
    for interest in Interest.objects.all():  # every interest is served by a category with a candidate
        assert Candidate.objects.filter(category__interests=interest).exists(), interest.slug


def test_an_interest_maps_to_a_category_once_and_a_member_holds_an_interest_once(django_user_model):
    catalog_seed_day0()
    interest, category = Interest.objects.get(slug="ai"), Category.objects.get(slug="ai-tools")
    with pytest.raises(IntegrityError), transaction.atomic():
        InterestCategory.objects.create(interest=interest, category=category)
    member = django_user_model.objects.create_user(username="curious", password="pw-curious-pass")
    UserInterest.objects.create(user=member, interest=interest, affinity=0.9)
    with pytest.raises(IntegrityError), transaction.atomic():
        UserInterest.objects.create(user=member, interest=interest, affinity=0.5)


@pytest.mark.parametrize("affinity", [-0.1, 1.5])
def test_an_affinity_outside_0_1_is_refused_by_the_database(django_user_model, affinity):
    catalog_seed_day0()
    member = django_user_model.objects.create_user(username="out-of-range", password="pw-range-pass")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserInterest.objects.create(user=member, interest=Interest.objects.first(), affinity=affinity)


def test_the_ranker_policy_is_typed_config_with_no_exploration_in_safe_mode():
    from waffle.testutils import override_switch

    from discovery.configs import RANKER_POLICY
    from flags.config.selectors import config_get
    from flags.names import SAFE_MODE

    assert config_get(RANKER_POLICY).epsilon == 0.08
    with override_switch(SAFE_MODE, active=True):
        assert config_get(RANKER_POLICY).epsilon == 0.0
