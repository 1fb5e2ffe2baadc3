"""The epsilon-greedy ranker as a pure function: no database, no config."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.ranker import (
    SEED_BITS,
    Decision,
    decision_seed_new,
    distribution_read,
    ranker_decide,
    ranker_propensities,
)

EPSILON = 0.08
K = 20
N_DECISIONS = 100_000
# Chi-square critical value for 19 degrees of freedom at alpha = 0.001.
CHI2_19_CRITICAL = 43.82

# The top candidate is deliberately not first in the input, and ids are not positions.
IDS = [1000 + 7 * i for i in range(K)]
SCORES = [((i * 37) % K) / K for i in range(K)]
TOP_ID = IDS[max(range(K), key=lambda i: (SCORES[i], -IDS[i]))]


def decide(seed: int, *, epsilon: float = EPSILON, slate_size: int = 5) -> Decision:
    return ranker_decide(candidate_ids=IDS, scores=SCORES, epsilon=epsilon, seed=seed, slate_size=slate_size)


@pytest.fixture(scope="module")
def decisions() -> list[Decision]:
    master = random.Random(20261207)
    return [decide(master.getrandbits(SEED_BITS)) for _ in range(N_DECISIONS)]


def chi_square(counts: Counter[int], expected: dict[int, float]) -> float:
    return sum((counts.get(cid, 0) - e) ** 2 / e for cid, e in expected.items())


def test_the_top_candidate_is_not_listed_first_in_the_fixture():
    assert IDS.index(TOP_ID) != 0
    assert len(set(SCORES)) == K


def test_over_100k_decisions_the_exploration_rate_is_within_one_point_of_epsilon(decisions):
    rate = sum(d.explored for d in decisions) / len(decisions)
    print(f"\nexploration rate over {len(decisions)} decisions at epsilon {EPSILON}: {rate:.5f}")
    assert abs(rate - EPSILON) < 0.01
    # A far tighter bound holds too (the standard error is ~0.00086); this one would catch an
    # off-by-a-factor bug that the one-point bound could miss at small epsilon.
    assert abs(rate - EPSILON) < 4 * math.sqrt(EPSILON * (1 - EPSILON) / len(decisions))


def test_every_propensity_is_exactly_one_of_the_two_epsilon_greedy_values(decisions):
    p_top = (1 - EPSILON) + EPSILON / K
    p_other = EPSILON / K
    assert ranker_propensities(epsilon=EPSILON, k=K) == (p_top, p_other)
    logged = Counter(d.p_exp for d in decisions)
    print(f"distinct propensities logged: {sorted(logged.items())}")
    assert set(logged) == {p_top, p_other}
    for d in decisions:
        assert d.p_exp == (p_top if d.chosen == d.top else p_other)
        assert d.p_exp == d.distribution[d.chosen]


def test_the_leading_item_follows_the_logged_distribution(decisions):
    distribution = decisions[0].distribution
    assert all(d.distribution == distribution for d in decisions[:1000])
    assert math.isclose(sum(distribution.values()), 1.0, rel_tol=1e-12)
    leads = Counter(d.chosen for d in decisions)
    expected = {cid: p * len(decisions) for cid, p in distribution.items()}
    stat = chi_square(leads, expected)
    top_share = leads[TOP_ID] / len(decisions)
    print(f"top leads {top_share:.5f} (expected {distribution[TOP_ID]:.5f}); chi-square {stat:.2f} (19 df)")
    assert abs(top_share - distribution[TOP_ID]) < 0.005
    assert stat < CHI2_19_CRITICAL


def test_exploring_draws_uniformly_from_all_candidates_the_top_one_included(decisions):
    explored = [d for d in decisions if d.explored]
    leads = Counter(d.chosen for d in explored)
    expected = {cid: len(explored) / K for cid in IDS}
    stat = chi_square(leads, expected)
    print(
        f"explored {len(explored)}: top drawn {leads[TOP_ID]} times (expected {len(explored) / K:.0f}); "
        f"chi-square {stat:.2f} (19 df)"
    )
    assert leads[TOP_ID] > 0
    assert set(leads) == set(IDS)
    assert stat < CHI2_19_CRITICAL
    # Exploring into the top candidate logs the top's propensity, not epsilon / K.
    assert all(d.p_exp == d.distribution[TOP_ID] for d in explored if d.chosen == TOP_ID)
    assert not any(d.chosen != d.top for d in decisions if not d.explored)


def test_a_decision_replays_exactly_from_its_seed(decisions):
    for original in decisions[:: N_DECISIONS // 200]:
        replay = decide(original.seed)
        assert replay == original
        assert (replay.slate, replay.chosen, replay.p_exp) == (original.slate, original.chosen, original.p_exp)


def test_a_decision_does_not_depend_on_the_order_candidates_are_listed_in():
    shuffled = list(zip(IDS, SCORES, strict=True))
    random.Random(3).shuffle(shuffled)
    for seed in range(300):
        other = ranker_decide(
            candidate_ids=[cid for cid, _ in shuffled],
            scores=[s for _, s in shuffled],
            epsilon=0.5,
            seed=seed,
            slate_size=5,
        )
        assert other == decide(seed, epsilon=0.5)


def test_logged_seeds_replay_the_same_decisions_as_when_they_were_logged():
    # Pinned outcomes: changing how a decision draws its randomness would silently break the
    # replay of every decision already logged, so it must fail here first.
    ids, scores = [11, 12, 13, 14, 15], [0.2, 0.9, 0.5, 0.1, 0.7]

    def at(seed: int) -> Decision:
        return ranker_decide(candidate_ids=ids, scores=scores, epsilon=0.5, seed=seed, slate_size=4)

    assert (at(0).explored, at(0).slate, at(0).p_exp) == (False, (12, 15, 13, 11), 0.6)
    assert (at(1).explored, at(1).slate, at(1).p_exp) == (True, (12, 15, 13, 11), 0.6)
    assert (at(3).explored, at(3).slate, at(3).p_exp) == (True, (14, 12, 15, 13), 0.1)
    assert (at(9).explored, at(9).slate, at(9).p_exp) == (True, (13, 12, 15, 11), 0.1)


def test_the_slate_is_the_leader_then_the_rest_by_score():
    d = ranker_decide(
        candidate_ids=[11, 12, 13, 14, 15], scores=[0.2, 0.9, 0.5, 0.1, 0.7], epsilon=0.5, seed=3, slate_size=10
    )
    assert d.chosen == 14
    assert d.slate == (14, 12, 15, 13, 11)
    assert d.slate_scores == (0.1, 0.9, 0.7, 0.5, 0.2)
    assert d.chosen_score == 0.1
    assert d.top == 12
    assert d.k == 5


def test_the_slate_is_cut_to_slate_size():
    assert len(decide(1, slate_size=1).slate) == 1
    assert len(decide(1, slate_size=7).slate) == 7
    assert len(decide(1, slate_size=K + 5).slate) == K


def test_epsilon_zero_never_explores_and_always_leads_with_the_top():
    for seed in range(5000):
        d = decide(seed, epsilon=0.0)
        assert not d.explored
        assert not d.randomized
        assert d.chosen == d.top == TOP_ID
        assert d.p_exp == 1.0
    assert d.distribution[TOP_ID] == 1.0
    assert sum(d.distribution.values()) == 1.0
    assert all(p == 0.0 for cid, p in d.distribution.items() if cid != TOP_ID)


def test_a_positive_epsilon_is_a_randomized_decision_even_when_it_exploits():
    d = decide(0, epsilon=0.01)
    assert d.randomized
    assert d.p_exp == 0.99 + 0.01 / K


def test_epsilon_one_always_explores():
    leads = Counter()
    for seed in range(2000):
        d = decide(seed, epsilon=1.0)
        assert d.explored
        assert d.p_exp == 1.0 / K
        leads[d.chosen] += 1
    assert set(leads) == set(IDS)


def test_a_single_candidate_is_chosen_with_propensity_one():
    explored = 0
    for seed in range(500):
        d = ranker_decide(candidate_ids=[7], scores=[0.3], epsilon=0.5, seed=seed, slate_size=3)
        assert d.slate == (7,)
        assert d.chosen == d.top == 7
        assert d.p_exp == 1.0
        assert dict(d.distribution) == {7: 1.0}
        explored += d.explored
    assert 0 < explored < 500


def test_ties_are_broken_by_the_lower_candidate_id():
    d = ranker_decide(candidate_ids=[9, 5, 3, 7], scores=[1.0, 2.0, 1.0, 2.0], epsilon=0.0, seed=1, slate_size=4)
    assert d.top == 5
    assert d.slate == (5, 7, 3, 9)
    assert d.slate_scores == (2.0, 2.0, 1.0, 1.0)
    # An explored leader leaves the rest in the same tie-broken order.
    explored = next(
        x
        for seed in range(200)
        if (
            x := ranker_decide(
                candidate_ids=[9, 5, 3, 7], scores=[1.0, 2.0, 1.0, 2.0], epsilon=1.0, seed=seed, slate_size=4
            )
        ).chosen
        == 3
    )
    assert explored.slate == (3, 5, 7, 9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidate_ids": [], "scores": []}, "candidate_ids is empty"),
        ({"candidate_ids": [1, 2], "scores": [0.5]}, "scores has 1 values for 2 candidate_ids"),
        ({"candidate_ids": [1, 1], "scores": [0.5, 0.4]}, "candidate_ids has duplicates"),
        ({"candidate_ids": [1, "2"], "scores": [0.5, 0.4]}, "candidate_ids must be integers"),
        ({"candidate_ids": [1, 2], "scores": [0.5, math.nan]}, r"scores\[1\] is NaN"),
        ({"candidate_ids": [1, 2], "scores": [math.inf, 0.1]}, r"scores\[0\] is infinite"),
        ({"candidate_ids": [1, 2], "scores": [0.5, "high"]}, "scores must be numbers"),
        ({"epsilon": -0.01}, r"epsilon must be in \[0, 1\]"),
        ({"epsilon": 1.5}, r"epsilon must be in \[0, 1\]"),
        ({"epsilon": math.nan}, r"epsilon must be in \[0, 1\]"),
        ({"epsilon": None}, "epsilon must be a number"),
        ({"epsilon": True}, "epsilon must be a number"),
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": 2**63}, "seed must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"slate_size": 0}, "slate_size must be an integer of at least 1"),
        ({"slate_size": 2.0}, "slate_size must be an integer of at least 1"),
    ],
)
def test_bad_inputs_raise_a_value_error_naming_the_problem(kwargs, message):
    arguments = {"candidate_ids": [1, 2], "scores": [0.5, 0.4], "epsilon": 0.1, "seed": 1, "slate_size": 2}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ranker_decide(**arguments)


def test_propensities_refuse_an_empty_candidate_set():
    with pytest.raises(ValueError, match="k must be at least 1"):
        ranker_propensities(epsilon=0.1, k=0)


def test_a_decision_is_immutable():
    d = decide(1)
    with pytest.raises(AttributeError):
        d.chosen = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.distribution[TOP_ID] = 0.5  # type: ignore[index]


def test_the_log_form_is_json_and_keeps_the_propensity_exact():
    d = decide(3, epsilon=0.3)
    logged = json.loads(json.dumps(d.as_log()))
    assert logged["p_exp"] == d.p_exp
    assert logged["seed"] == d.seed
    assert logged["slate"] == list(d.slate)
    # Two entries (the top's probability, every other's), and the whole map read back.
    assert len(logged["distribution"]) == 2
    assert distribution_read(logged["distribution"], candidate_ids=list(d.distribution)) == dict(d.distribution)
    replay = decide(logged["seed"], epsilon=logged["epsilon"])
    assert replay == d


def test_new_seeds_are_63_bit_and_vary():
    seeds = [decision_seed_new() for _ in range(200)]
    assert all(0 <= s < 2**63 for s in seeds)
    assert len(set(seeds)) == 200
    assert any(s >= 2**62 for s in seeds)
    d = decide(seeds[0])
    assert d.seed == seeds[0]


@settings(max_examples=300, deadline=None)
@given(
    candidates=st.dictionaries(
        st.integers(min_value=-(2**40), max_value=2**40),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        min_size=1,
        max_size=30,
    ),
    epsilon=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    slate_size=st.integers(min_value=1, max_value=40),
)
def test_every_decision_is_a_consistent_epsilon_greedy_slate(candidates, epsilon, seed, slate_size):
    ids, scores = list(candidates), list(candidates.values())
    d = ranker_decide(candidate_ids=ids, scores=scores, epsilon=epsilon, seed=seed, slate_size=slate_size)
    k = len(ids)
    ranked = sorted(ids, key=lambda cid: (-candidates[cid], cid))
    assert d.top == ranked[0]
    assert d.chosen == d.slate[0]
    assert len(d.slate) == min(slate_size, k)
    assert d.slate[1:] == tuple(cid for cid in ranked if cid != d.chosen)[: slate_size - 1]
    assert d.slate_scores == tuple(candidates[cid] for cid in d.slate)
    assert set(d.distribution) == set(ids)
    assert math.isclose(sum(d.distribution.values()), 1.0, rel_tol=1e-9)
    assert d.p_exp in ranker_propensities(epsilon=epsilon, k=k)
    assert d.p_exp == d.distribution[d.chosen]
    if not d.explored:
        assert d.chosen == d.top
    assert d.randomized == (epsilon > 0)
