"""Suggestions: ranked by the configured epsilon-greedy policy from the member's interests,
each decision logged whole (and replayable from its seed); safe mode serves the fallback
slate with no exploration and logs nothing as randomized; the flags turn logging and
suggestions off."""

from __future__ import annotations

import pytest
from waffle.testutils import override_flag, override_switch

from discovery.configs import RANKER_POLICY
from discovery.models import Candidate, Category, LearningEvent
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.ranker import distribution_read, ranker_decide
from discovery.services import catalog_seed_day0, suggestions_for_user, user_interests_set
from flags.config.selectors import config_get
from flags.config.services import config_set
from flags.models import Flag
from flags.names import SAFE_MODE

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(django_user_model):
    catalog_seed_day0()
    for name in (LEARNING_ENABLED, MARKETPLACE_SUGGEST):  # as the data migration makes them
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})
    ai = Category.objects.get(slug="ai-tools")
    Candidate.objects.bulk_create([Candidate(name=f"ai {i}", category=ai, popularity=i / 20) for i in range(10)])
    member = django_user_model.objects.create_user(username="suggested", password="pw-suggested-pass")
    user_interests_set(user=member, affinities={"ai": 1.0, "fintech": 0.2})
    return member


def test_suggestions_come_from_the_members_interests_and_the_decision_is_logged_whole(member):
    config_set("ranker.policy", {"epsilon": 0.0, "slate_size": 5}, reason="no exploration for this test")
    served = suggestions_for_user(user=member)
    assert served.personal and len(served.candidates) == 5
    assert {c.category_slug for c in served.candidates} <= {"ai-tools", "fintech-services"}
    assert served.candidates[0].name == "Model evaluation workbench"  # popularity 0.62 x affinity 1.0 leads
    event = LearningEvent.objects.get(decision_id=served.decision_id)
    assert event.slate == [c.pk for c in served.candidates] and event.chosen_id == served.candidates[0].pk
    assert (event.policy_version, event.randomized, event.p_exp, event.explored) == (
        "epsilon_greedy_v1",
        False,
        0.0,
        False,
    )
    distribution = distribution_read(event.distribution, candidate_ids=event.candidate_ids)
    assert len(event.candidate_ids) == 12 and abs(sum(distribution.values()) - 1) < 1e-9


def test_a_logged_randomized_decision_replays_from_its_seed(member):
    config_set("ranker.policy", {"epsilon": 0.5, "slate_size": 4}, reason="explore a lot")
    for _ in range(20):
        suggestions_for_user(user=member)
    events = list(LearningEvent.objects.filter(user=member))
    assert len(events) == 20 and any(e.explored for e in events) and not all(e.explored for e in events)
    for event in events:
        assert event.randomized and event.p_exp in (0.5 + 0.5 / 12, 0.5 / 12)
        assert set(event.slate) <= set(event.candidate_ids)
    # Replay one: the same candidate set, scores and seed give the same slate.
    from discovery.selectors import candidates_scored_for_user

    scored = candidates_scored_for_user(user=member, fallback_size=4)
    event = events[-1]
    again = ranker_decide(
        candidate_ids=scored.candidate_ids, scores=scored.scores, epsilon=0.5, seed=event.seed, slate_size=4
    )
    assert list(again.slate) == event.slate and again.chosen == event.chosen_id


def test_safe_mode_serves_the_fallback_slate_without_exploring_and_logs_nothing_randomized(member):
    config_set("ranker.policy", {"epsilon": 1.0, "slate_size": 3}, reason="always explore")
    with override_switch(SAFE_MODE, active=True):
        size = config_get(RANKER_POLICY).slate_size  # the safe policy, whole: epsilon 0
        popular = list(Candidate.objects.order_by("-popularity", "-published_at", "id")[:size])
        for _ in range(10):
            served = suggestions_for_user(user=member)
            assert not served.personal and not served.explored
            assert [c.pk for c in served.candidates] == [c.pk for c in popular]
    events = LearningEvent.objects.filter(user=member)
    assert events.count() == 10 and not events.filter(randomized=True).exists() and not events.exclude(p_exp=0).exists()


def test_the_flags_turn_logging_and_suggestions_off(member):
    config_set("ranker.policy", {"epsilon": 0.0}, reason="the greedy slate")
    greedy = suggestions_for_user(user=member, limit=3)
    config_set("ranker.policy", {"epsilon": 1.0}, reason="explore always")
    with override_flag(LEARNING_ENABLED, active=False):
        # Learning off: the member is served the greedy slate, never an exploration, and
        # nothing is logged (at epsilon 1 a learning member would explore on most requests).
        served = [suggestions_for_user(user=member, limit=3) for _ in range(20)]
    assert all(s.candidates == greedy.candidates and s.decision_id is None and not s.explored for s in served)
    assert LearningEvent.objects.count() == 1  # the first, greedy, request's
    with override_flag(MARKETPLACE_SUGGEST, active=False):
        assert suggestions_for_user(user=member).candidates == []


def test_a_member_with_no_interests_gets_the_fallback_slate(django_user_model, member):
    stranger = django_user_model.objects.create_user(username="stranger", password="pw-stranger-pass")
    served = suggestions_for_user(user=stranger, limit=4)
    assert not served.personal and len(served.candidates) == 4
