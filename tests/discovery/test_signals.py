"""Signals and rewards: a click or save on the item a member's decision led with, within the
attribution window, rewards that decision once; nothing else is guessed as a reward, and
another member's decision is not found."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from discovery.models import Candidate, Category, IntentSignal, LearningEvent
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.services import catalog_seed_day0, signal_record, suggestions_for_user, user_interests_set
from flags.config.services import config_set
from flags.models import Flag
from matchplatform.exceptions import InvalidInput, NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(django_user_model):
    catalog_seed_day0()
    for name in (LEARNING_ENABLED, MARKETPLACE_SUGGEST):
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})
    ai = Category.objects.get(slug="ai-tools")
    Candidate.objects.bulk_create([Candidate(name=f"ai {i}", category=ai, popularity=i / 20) for i in range(5)])
    config_set("ranker.policy", {"epsilon": 0.0, "slate_size": 4, "attribution_seconds": 600}, reason="test")
    member = django_user_model.objects.create_user(username="clicker", password="pw-clicker-pass")
    user_interests_set(user=member, affinities={"ai": 1.0})
    suggestions = suggestions_for_user(user=member)
    return member, suggestions, LearningEvent.objects.get(decision_id=suggestions.decision_id)


def test_a_click_on_the_chosen_item_rewards_its_decision_once(served):
    member, suggestions, decision = served
    chosen = suggestions.candidates[0]
    signal = signal_record(user=member, candidate_id=chosen.pk, kind="click")
    decision.refresh_from_db()
    assert signal.decision_id == decision.pk and decision.reward == 1.0 and decision.rewarded_at is not None
    first = decision.rewarded_at
    signal_record(user=member, candidate_id=chosen.pk, kind="save", decision_id=str(decision.decision_id))
    decision.refresh_from_db()
    assert decision.rewarded_at == first  # the first reward stands


def test_other_items_dismissals_and_late_clicks_are_signals_not_rewards(served):
    member, suggestions, decision = served
    other = suggestions.candidates[1]
    assert signal_record(user=member, candidate_id=other.pk, kind="click").decision_id == decision.pk
    signal_record(user=member, candidate_id=suggestions.candidates[0].pk, kind="dismiss")
    decision.refresh_from_db()
    assert decision.reward is None
    LearningEvent.objects.filter(pk=decision.pk).update(decided_at=timezone.now() - timedelta(seconds=601))
    late = signal_record(user=member, candidate_id=suggestions.candidates[0].pk, kind="click")
    decision.refresh_from_db()
    assert late.decision_id is None and decision.reward is None
    assert IntentSignal.objects.filter(user=member).count() == 3


def test_another_members_decision_is_not_found_and_bad_input_is_refused(served, django_user_model):
    member, suggestions, decision = served
    other = django_user_model.objects.create_user(username="other-clicker", password="pw-other-pass")
    with pytest.raises(NotFound):
        signal_record(
            user=other, candidate_id=suggestions.candidates[0].pk, kind="click", decision_id=str(decision.decision_id)
        )
    with pytest.raises(NotFound):
        signal_record(user=member, candidate_id=10**9, kind="click")
    with pytest.raises(InvalidInput) as refused:
        signal_record(user=member, candidate_id=suggestions.candidates[0].pk, kind="like")
    assert "kind" in refused.value.fields
    decision.refresh_from_db()
    assert decision.reward is None and not IntentSignal.objects.filter(user=other).exists()
