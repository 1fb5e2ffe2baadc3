"""The epsilon-greedy ranking policy as a pure decision function (no database, no config).

A decision is a function of (candidates, scores, epsilon, seed, slate size) and nothing else:
one `random.Random(seed)` per decision, so a logged decision replays exactly. The candidate
order handed in does not matter either: candidates are ranked by score (ties: lower id
first) before anything is drawn.

With probability 1 - epsilon the top-scored candidate leads the slate; otherwise a candidate
drawn uniformly from ALL K candidates leads (the top one included), so:

    p(top leads)   = (1 - epsilon) + epsilon / K
    p(other leads) = epsilon / K

Those are the only two propensities this policy can log (`ranker_propensities`); policy
health counts logged values that are neither.

Safe mode runs the policy with epsilon 0: the top always leads with p_exp 1 and
`Decision.randomized` is False. The issue asks that such decisions are not logged as
randomized (`p_exp` 0 in the learning log); that rule is the caller's, this module only
reports `randomized`.
"""

from __future__ import annotations

import math
import operator
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# Seeds are logged in a signed 64-bit column.
SEED_BITS = 63


@dataclass(frozen=True)
class Decision:
    """One served slate and how it was chosen.

    `explored` says the random branch was taken (the leading item may still be the top one);
    `randomized` says the leading item was drawn from a distribution at all (epsilon > 0).
    """

    slate: tuple[int, ...]
    chosen: int
    p_exp: float
    distribution: Mapping[int, float]
    explored: bool
    randomized: bool
    epsilon: float
    seed: int
    top: int
    slate_scores: tuple[float, ...]

    @property
    def chosen_score(self) -> float:
        return self.slate_scores[0]

    @property
    def k(self) -> int:
        return len(self.distribution)

    def as_log(self) -> dict[str, Any]:
        """JSON-ready fields for a learning event (JSON object keys are strings)."""
        return {
            "slate": list(self.slate),
            "chosen": self.chosen,
            "p_exp": self.p_exp,
            "distribution": distribution_log(self.distribution, top=self.top),
            "explored": self.explored,
            "randomized": self.randomized,
            "epsilon": self.epsilon,
            "seed": self.seed,
            "top": self.top,
            "slate_scores": list(self.slate_scores),
        }


# The learning log's key for "every other candidate of the set" (``distribution_log``).
OTHERS = "*"


def distribution_log(distribution: Mapping[int, float], *, top: int) -> dict[str, float]:
    """A decision's distribution as the learning log stores it (JSON keys are strings). The
    epsilon-greedy distribution has two values, so it is logged as the top candidate's
    probability and, under ``OTHERS``, the one every other candidate of the logged set has:
    two entries whatever the set's size, and nothing lost (``distribution_read`` gives the
    whole map back). A distribution of more values is logged whole."""
    others = {p for cid, p in distribution.items() if cid != top}
    if len(others) > 1:
        return {str(cid): p for cid, p in distribution.items()}
    logged = {str(top): distribution[top]}
    if others:
        logged[OTHERS] = others.pop()
    return logged


def distribution_read(logged: Mapping[str, float], *, candidate_ids: Sequence[int]) -> dict[int, float]:
    """Each candidate's probability from a logged distribution, either form of
    ``distribution_log`` (candidate id -> probability, for every id of the logged set)."""
    if OTHERS not in logged:
        return {int(cid): float(p) for cid, p in logged.items()}
    other = float(logged[OTHERS])
    named = {int(cid): float(p) for cid, p in logged.items() if cid != OTHERS}
    return {int(cid): named.get(int(cid), other) for cid in candidate_ids}


def decision_seed_new() -> int:
    """A fresh seed for one decision: 63 random bits, so it fits a signed bigint column."""
    return secrets.randbits(SEED_BITS)


def ranker_propensities(*, epsilon: float, k: int) -> tuple[float, float]:
    """(p of the top candidate leading, p of any other candidate leading) for K candidates.

    The one place the two values are computed, so a logged p_exp can be compared to them
    exactly (same float arithmetic).
    """
    _epsilon_check(epsilon)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    p_other = epsilon / k
    return (1.0 - epsilon) + p_other, p_other


def ranker_decide(
    *,
    candidate_ids: Sequence[int],
    scores: Sequence[float],
    epsilon: float,
    seed: int,
    slate_size: int,
) -> Decision:
    """Epsilon-greedy over the candidate set; the slate is the leader then the rest by score.

    Raises ValueError (naming the problem) for: no candidates (the caller serves a fallback
    slate instead), lengths that differ, duplicate ids, scores that are NaN or infinite,
    epsilon outside [0, 1], a seed outside [0, 2**63), a slate size below 1.
    """
    ids = _ids_check(candidate_ids)
    values = _scores_check(scores, expected=len(ids))
    epsilon = _epsilon_check(epsilon)
    seed = _seed_check(seed)
    if isinstance(slate_size, bool) or not isinstance(slate_size, int) or slate_size < 1:
        raise ValueError(f"slate_size must be an integer of at least 1, got {slate_size!r}")

    k = len(ids)
    # Rank first: the decision must not depend on the order the caller listed candidates in.
    ranked = sorted(range(k), key=lambda i: (-values[i], ids[i]))

    rng = random.Random(seed)
    # Always draw the coin, even at epsilon 0, so the stream is the same for every epsilon.
    explored = rng.random() < epsilon
    lead = ranked[rng.randrange(k)] if explored else ranked[0]

    p_top, p_other = ranker_propensities(epsilon=epsilon, k=k)
    top = ids[ranked[0]]
    distribution = {ids[i]: p_other for i in ranked}
    distribution[top] = p_top

    order = [lead, *(i for i in ranked if i != lead)][:slate_size]
    chosen = ids[lead]
    return Decision(
        slate=tuple(ids[i] for i in order),
        chosen=chosen,
        p_exp=distribution[chosen],
        distribution=MappingProxyType(distribution),
        explored=explored,
        randomized=epsilon > 0.0,
        epsilon=epsilon,
        seed=seed,
        top=top,
        slate_scores=tuple(values[i] for i in order),
    )


def _ids_check(candidate_ids: Sequence[int]) -> list[int]:
    if len(candidate_ids) == 0:
        raise ValueError("candidate_ids is empty: there is nothing to rank")
    try:
        ids = [operator.index(cid) for cid in candidate_ids]
    except TypeError:
        raise ValueError("candidate_ids must be integers") from None
    if len(set(ids)) != len(ids):
        raise ValueError("candidate_ids has duplicates")
    return ids


def _scores_check(scores: Sequence[float], *, expected: int) -> list[float]:
    if len(scores) != expected:
        raise ValueError(f"scores has {len(scores)} values for {expected} candidate_ids")
    try:
        values = [float(s) for s in scores]
    except (TypeError, ValueError):
        raise ValueError("scores must be numbers") from None
    if all(map(math.isfinite, values)):
        return values
    for position, value in enumerate(values):
        if math.isnan(value):
            raise ValueError(f"scores[{position}] is NaN")
        if math.isinf(value):
            raise ValueError(f"scores[{position}] is infinite")
    return values


def _epsilon_check(epsilon: float) -> float:
    if isinstance(epsilon, bool):
        raise ValueError(f"epsilon must be a number in [0, 1], got {epsilon!r}")
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon must be a number in [0, 1], got {epsilon!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    return value


def _seed_check(seed: int) -> int:
    message = f"seed must be an integer in [0, 2**{SEED_BITS}), got {seed!r}"
    if isinstance(seed, bool):
        raise ValueError(message)
    try:
        value = operator.index(seed)
    except TypeError:
        raise ValueError(message) from None
    if not 0 <= value < 2**SEED_BITS:
        raise ValueError(message)
    return value
