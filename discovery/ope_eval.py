"""Off-policy evaluation of a candidate ranking policy on the logged decisions of ONE policy
version: the glue between ``LearningEvent`` rows and the pure estimators of ``discovery.ope``.

What is evaluated: an epsilon-greedy policy given by its epsilon and its scoring, over each
logged decision's own candidate set. Its probability of leading with the item the logging
policy led with is what re-running the epsilon-greedy ranking over that candidate set gives
(``ranker.ranker_propensities``): ``1 - eps + eps/K`` if that item is the candidate policy's
top-scored one, ``eps/K`` otherwise. Which item is top depends on the scoring:

- the version's own scoring (``affinity``: the member's affinity for the candidate's category
  times its popularity, what ``epsilon_greedy_v1`` serves) reuses the *logged* ranking: the
  top item is read from the log (the chosen item when its propensity is the leader's value,
  else the slate's second item, else the distribution's largest value), so evaluating another
  epsilon is exact and independent of later catalog changes;
- another scoring (``popularity``) recomputes the top of the logged candidate set from the
  catalog and the member's interests *as they are now* (scores are not logged per candidate):
  drift since the decision is a bias the result states, not corrects.

Decisions served from the fallback slate (``context.personal`` false) were scored by
popularity whatever the policy, and so would be the candidate's.

Only randomized decisions (``p_exp > 0``) can be used: a decision made at epsilon 0 gives
every other item probability 0 and importance weighting cannot see past it. Only decisions
whose attribution window has closed are read, so a missing reward is a 0, never a "not yet".
Versions are never pooled: each has its own propensities and config.

The doubly robust estimate needs a reward model: the mean reward of each candidate when it
led, shrunk toward the overall mean (``PRIOR_STRENGTH`` pseudo-decisions), fitted with
two-fold cross-fitting (decisions split by id parity; each fold's predictions come from the
model fitted on the other fold), so a decision's own reward never predicts itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.utils import timezone

from discovery.configs import RANKER_POLICY
from discovery.models import Candidate, InterestCategory, LearningEvent, UserInterest
from discovery.ope import DEFAULT_CONFIDENCE, Estimate, effective_sample_size, ope_all, ope_dr_difference
from discovery.ranker import distribution_read, ranker_propensities
from flags.config.selectors import config_get
from matchplatform.exceptions import InvalidInput, NotFound

SCORING_AFFINITY = "affinity"
SCORING_POPULARITY = "popularity"
SCORINGS = (SCORING_AFFINITY, SCORING_POPULARITY)
# What each version scored with (a version not listed: affinity, unless its context says).
VERSION_SCORING = {"epsilon_greedy_v1": SCORING_AFFINITY}
PRIOR_STRENGTH = 5.0  # the reward model's shrinkage toward the overall mean, in decisions
PROPENSITY_TOLERANCE = 1e-9

Progress = Callable[[Iterable[Any], int], Iterable[Any]]


@dataclass(frozen=True)
class TargetPolicy:
    """An epsilon-greedy policy to evaluate: its epsilon and how it scores candidates."""

    epsilon: float
    scoring: str = SCORING_AFFINITY

    def __post_init__(self) -> None:
        if isinstance(self.epsilon, bool) or not 0.0 <= float(self.epsilon) <= 1.0:
            raise InvalidInput("epsilon is a number from 0 to 1.", fields={"epsilon": ["A number from 0 to 1."]})
        if self.scoring not in SCORINGS:
            raise InvalidInput(
                f"scoring is one of {', '.join(SCORINGS)}.", fields={"scoring": [f"One of {', '.join(SCORINGS)}."]}
            )


@dataclass
class OpeLog:
    """The usable decisions of one version, as arrays (one element per decision)."""

    version: str
    since: datetime
    until: datetime
    decisions: int  # all of the version's decisions in the window
    randomized: int  # ... of which randomized (p_exp > 0)
    open_window: int  # ... randomized but still inside their attribution window (not read)
    ids: list[int] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    candidate_sets: list[list[int]] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    logged_top: list[int | None] = field(default_factory=list)
    scoring: list[str] = field(default_factory=list)  # what each decision was scored with
    fallback: list[bool] = field(default_factory=list)  # served the fallback slate (popularity)
    rewards: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    p_log: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def read(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class OpeResult:
    version: str
    candidate: TargetPolicy
    since: datetime
    until: datetime
    decisions: int
    randomized: int
    open_window: int
    read: int  # randomized decisions with a closed window read (newest first, up to the cap)
    usable: int  # ... for which the candidate's propensity could be computed
    observed_mean: float | None  # the logging policy's mean reward on the usable decisions
    estimates: dict[str, Estimate]
    effective_sample_size: float | None
    mean_importance_weight: float | None
    notes: list[str]


# The fewest rewarded decisions a lift is estimated from (fewer: no estimate, so a gate holds).
LIFT_MIN_REWARDED = 20


def _no_progress(items: Iterable[Any], total: int) -> Iterable[Any]:
    return items


def ope_window(*, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = until or timezone.now()
    return since or until - timedelta(hours=int(settings.OPE_WINDOW_HOURS)), until


def _logged_top(
    *, chosen: int, p_exp: float, epsilon: float | None, candidates: list[int], slate: list[int]
) -> int | None | bool:
    """The logged ranking's top item; True when it must be read from the distribution; None
    when the log cannot tell (epsilon 1: every item had the same probability)."""
    k = len(candidates)
    if k == 1:
        return chosen
    if epsilon is None or not 0.0 < epsilon < 1.0:
        return None
    p_top, _ = ranker_propensities(epsilon=epsilon, k=k)
    if abs(p_exp - p_top) <= PROPENSITY_TOLERANCE:
        return chosen
    if len(slate) > 1:
        return int(slate[1])  # the slate is the leader, then the rest by score
    return True


def ope_log_load(
    *,
    version: str,
    since: datetime | None = None,
    until: datetime | None = None,
    max_decisions: int | None = None,
    progress: Progress = _no_progress,
) -> OpeLog:
    """The newest ``max_decisions`` randomized decisions of ``version`` in the window whose
    attribution window has closed (NotFound when the version logged nothing at all)."""
    if not LearningEvent.objects.filter(policy_version=version).exists():
        raise NotFound(f"No decisions were logged by policy version {version!r}.")
    since, until = ope_window(since=since, until=until)
    attribution = timedelta(seconds=int(config_get(RANKER_POLICY).attribution_seconds))
    closed_until = min(until, timezone.now() - attribution)
    limit = int(max_decisions or settings.OPE_MAX_DECISIONS)
    window = LearningEvent.objects.filter(policy_version=version, decided_at__gte=since, decided_at__lt=until)
    randomized = window.filter(randomized=True, p_exp__gt=0)
    log = OpeLog(
        version=version,
        since=since,
        until=until,
        decisions=window.count(),
        randomized=randomized.count(),
        open_window=randomized.filter(decided_at__gte=closed_until).count(),
    )
    rows = (
        randomized.filter(decided_at__lt=closed_until)
        .order_by("-decided_at", "-id")
        .values_list("id", "user_id", "candidate_ids", "slate", "chosen_id", "p_exp", "reward", "context")[:limit]
    )
    total = min(limit, log.randomized - log.open_window)
    rewards: list[float] = []
    p_log: list[float] = []
    need_distribution: list[int] = []
    for pk, user_id, candidates, slate, chosen, p_exp, reward, context in progress(rows.iterator(2000), total):
        context = context if isinstance(context, dict) else {}
        epsilon = context.get("epsilon")
        candidates = [int(c) for c in candidates or []]
        if not candidates:
            continue
        top = _logged_top(
            chosen=chosen,
            p_exp=float(p_exp),
            epsilon=float(epsilon) if isinstance(epsilon, int | float) else None,
            candidates=candidates,
            slate=list(slate or []),
        )
        if top is True:
            need_distribution.append(len(log.ids))
            top = None
        personal = context.get("personal", True)
        scoring = str(context.get("scoring") or VERSION_SCORING.get(version, SCORING_AFFINITY))
        log.ids.append(pk)
        log.users.append(user_id)
        log.candidate_sets.append(candidates)
        log.chosen.append(int(chosen))
        log.logged_top.append(top if isinstance(top, int) else None)
        log.scoring.append(scoring if personal else SCORING_POPULARITY)
        log.fallback.append(not personal)
        rewards.append(float(reward) if reward is not None else 0.0)
        p_log.append(float(p_exp))
    if need_distribution:
        wanted = {log.ids[i]: i for i in need_distribution}
        for pk, distribution in LearningEvent.objects.filter(pk__in=list(wanted)).values_list("id", "distribution"):
            if distribution:
                full = distribution_read(distribution, candidate_ids=log.candidate_sets[wanted[pk]])
                best = max(full.items(), key=lambda item: (item[1], -item[0]))
                log.logged_top[wanted[pk]] = best[0]
    log.rewards = np.asarray(rewards, dtype=np.float64)
    log.p_log = np.asarray(p_log, dtype=np.float64)
    return log


class Catalog:
    """Scores of candidates as they are now (for a scoring other than the logged one)."""

    def __init__(self, *, candidate_ids: set[int], user_ids: set[int]) -> None:
        self.popularity: dict[int, float] = {}
        self.category: dict[int, int] = {}
        ids = list(candidate_ids)
        for start in range(0, len(ids), 5000):
            for pk, popularity, category in Candidate.objects.filter(pk__in=ids[start : start + 5000]).values_list(
                "id", "popularity", "category_id"
            ):
                self.popularity[pk] = float(popularity)
                self.category[pk] = category
        self.affinity: dict[int, dict[int, float]] = {}
        users = list(user_ids)
        interests: dict[int, dict[int, float]] = {}
        for start in range(0, len(users), 5000):
            for user_id, interest_id, affinity in UserInterest.objects.filter(
                user_id__in=users[start : start + 5000]
            ).values_list("user_id", "interest_id", "affinity"):
                interests.setdefault(user_id, {})[interest_id] = float(affinity)
        categories: dict[int, list[int]] = {}
        for interest_id, category_id in InterestCategory.objects.values_list("interest_id", "category_id"):
            categories.setdefault(interest_id, []).append(category_id)
        for user_id, by_interest in interests.items():
            per_category: dict[int, float] = {}
            for interest_id, affinity in by_interest.items():
                for category_id in categories.get(interest_id, []):
                    per_category[category_id] = max(per_category.get(category_id, 0.0), affinity)
            self.affinity[user_id] = per_category

    def score(self, *, scoring: str, user_id: int, candidate_id: int) -> float:
        popularity = self.popularity.get(candidate_id, 0.0)
        if scoring == SCORING_POPULARITY:
            return popularity
        weight = self.affinity.get(user_id, {}).get(self.category.get(candidate_id, -1), 0.0)
        return round(weight * popularity, 6)

    def top(self, *, scoring: str, user_id: int, candidates: list[int]) -> int:
        """The ranker's top: highest score, ties to the lower id (as ``ranker_decide``)."""
        return min(candidates, key=lambda c: (-self.score(scoring=scoring, user_id=user_id, candidate_id=c), c))


@dataclass(frozen=True)
class TargetArrays:
    propensity: npt.NDArray[np.float64]  # the target's probability of the logged leader
    p_top: npt.NDArray[np.float64]
    p_other: npt.NDArray[np.float64]
    top: list[int | None]
    usable: npt.NDArray[np.bool_]


def target_arrays(*, log: OpeLog, target: TargetPolicy, catalog: Catalog | None) -> TargetArrays:
    """Per logged decision, the target policy's action probabilities (re-running epsilon-greedy
    over the decision's candidate set); ``usable`` is False where its top cannot be known."""
    n = log.read
    propensity = np.zeros(n)
    p_top = np.zeros(n)
    p_other = np.zeros(n)
    usable = np.ones(n, dtype=bool)
    tops: list[int | None] = []
    for i in range(n):
        candidates = log.candidate_sets[i]
        effective = SCORING_POPULARITY if log.fallback[i] else target.scoring
        if effective == log.scoring[i]:
            top = log.logged_top[i]
        else:
            assert catalog is not None
            top = catalog.top(scoring=effective, user_id=log.users[i], candidates=candidates)
        tops.append(top)
        high, low = ranker_propensities(epsilon=float(target.epsilon), k=len(candidates))
        p_top[i], p_other[i] = high, low
        if top is None:
            usable[i] = False
            continue
        propensity[i] = high if log.chosen[i] == top else low
    return TargetArrays(propensity=propensity, p_top=p_top, p_other=p_other, top=tops, usable=usable)


def _needs_catalog(log: OpeLog, targets: Iterable[TargetPolicy]) -> Catalog | None:
    """The catalog, loaded only when some target scores some decision otherwise than it was
    logged (fallback decisions are popularity-scored by every policy)."""
    logged = {s for s, fallback in zip(log.scoring, log.fallback, strict=True) if not fallback}
    if all(t.scoring == s for t in targets for s in logged):
        return None
    return Catalog(candidate_ids={c for cs in log.candidate_sets for c in cs}, user_ids=set(log.users))


@dataclass(frozen=True)
class RewardModel:
    """Cross-fitted per-candidate mean rewards: for fold f, ``mean[f] + delta[f].get(c, 0)``."""

    mean: tuple[float, float]
    delta: tuple[dict[int, float], dict[int, float]]
    folds: npt.NDArray[np.int64]
    set_delta: npt.NDArray[np.float64]  # per decision: sum over its candidate set of its fold's delta

    def predict(self, i: int, candidate: int | None) -> float:
        fold = int(self.folds[i])
        if candidate is None:
            return self.mean[fold]
        return self.mean[fold] + self.delta[fold].get(candidate, 0.0)


def reward_model_fit(*, log: OpeLog) -> RewardModel:
    """Per-candidate mean reward when it led, shrunk toward the overall mean, two-fold
    cross-fitted by decision id parity (see the module docstring)."""
    folds = np.asarray([pk % 2 for pk in log.ids], dtype=np.int64)
    means: list[float] = []
    deltas: list[dict[int, float]] = []
    for fold in (0, 1):
        train = folds != fold
        if not train.any():  # one fold only: fit on everything (documented fallback)
            train = np.ones_like(train)
        mu = float(log.rewards[train].mean()) if train.any() else 0.0
        sums: dict[int, float] = {}
        counts: dict[int, int] = {}
        for i in np.flatnonzero(train):
            c = log.chosen[int(i)]
            sums[c] = sums.get(c, 0.0) + float(log.rewards[int(i)])
            counts[c] = counts.get(c, 0) + 1
        delta = {c: (sums[c] + PRIOR_STRENGTH * mu) / (counts[c] + PRIOR_STRENGTH) - mu for c in sums}
        means.append(mu)
        deltas.append(delta)
    set_delta = np.asarray(
        [sum(deltas[int(folds[i])].get(c, 0.0) for c in cs) for i, cs in enumerate(log.candidate_sets)],
        dtype=np.float64,
    )
    return RewardModel(mean=(means[0], means[1]), delta=(deltas[0], deltas[1]), folds=folds, set_delta=set_delta)


def model_arrays(
    *, log: OpeLog, model: RewardModel, target: TargetArrays
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(the model's prediction for the logged leader, its expectation under the target)."""
    n = log.read
    logged = np.zeros(n)
    expected = np.zeros(n)
    for i in range(n):
        fold = int(model.folds[i])
        k = len(log.candidate_sets[i])
        logged[i] = model.predict(i, log.chosen[i])
        total = k * model.mean[fold] + float(model.set_delta[i])
        expected[i] = target.p_other[i] * total + (target.p_top[i] - target.p_other[i]) * model.predict(
            i, target.top[i]
        )
    return logged, expected


def ope_evaluate(
    *,
    version: str,
    candidate: TargetPolicy,
    since: datetime | None = None,
    until: datetime | None = None,
    max_decisions: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    progress: Progress = _no_progress,
) -> OpeResult:
    """IPS, SNIPS and DR estimates (with intervals) of ``candidate`` on ``version``'s logs.

    NotFound when the version logged nothing; with fewer than two usable decisions the
    estimates are empty and ``notes`` says why (never an estimate from nothing)."""
    log = ope_log_load(version=version, since=since, until=until, max_decisions=max_decisions, progress=progress)
    notes: list[str] = []
    if candidate.scoring != VERSION_SCORING.get(version, SCORING_AFFINITY):
        notes.append(
            f"scoring {candidate.scoring!r} is recomputed from the catalog and interests as they are now, "
            "not as they were at each decision"
        )
    if log.open_window:
        notes.append(f"{log.open_window} randomized decisions are still inside their attribution window: not read")
    if log.read < log.randomized - log.open_window:
        notes.append(f"only the newest {log.read} randomized decisions were read (the cap)")
    target = target_arrays(log=log, target=candidate, catalog=_needs_catalog(log, [candidate]))
    mask = target.usable
    usable = int(mask.sum())
    if usable < log.read:
        notes.append(
            f"{log.read - usable} decisions logged at epsilon 1 cannot tell the candidate's top item: left out"
        )
    rewards = log.rewards[mask]
    observed = float(rewards.mean()) if usable else None
    estimates: dict[str, Estimate] = {}
    ess: float | None = None
    mean_weight: float | None = None
    if usable >= 2:
        model = reward_model_fit(log=log)
        logged_model, target_model = model_arrays(log=log, model=model, target=target)
        weights = target.propensity[mask] / log.p_log[mask]
        ess = effective_sample_size(weights)
        mean_weight = float(weights.mean())
        try:
            estimates = ope_all(
                rewards=rewards,
                logging_propensity=log.p_log[mask],
                target_propensity=target.propensity[mask],
                reward_model_logged=logged_model[mask],
                reward_model_target=target_model[mask],
                confidence=confidence,
            )
        except ValueError as exc:
            notes.append(f"no estimate: {exc}")
    else:
        notes.append(f"need at least 2 usable decisions, have {usable}")
    return OpeResult(
        version=version,
        candidate=candidate,
        since=log.since,
        until=log.until,
        decisions=log.decisions,
        randomized=log.randomized,
        open_window=log.open_window,
        read=log.read,
        usable=usable,
        observed_mean=observed,
        estimates=estimates,
        effective_sample_size=ess,
        mean_importance_weight=mean_weight,
        notes=notes,
    )


@dataclass(frozen=True)
class LiftResult:
    """``V(candidate) - V(baseline)`` on one version's logs, doubly robust, paired interval."""

    version: str
    estimate: Estimate | None
    usable: int
    detail: str


def ope_lift(
    *,
    version: str,
    candidate: TargetPolicy,
    baseline: TargetPolicy,
    since: datetime | None = None,
    until: datetime | None = None,
    max_decisions: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> LiftResult:
    """How much better (or worse) the candidate would have done than the baseline (the
    current policy) on ``version``'s logs: a doubly robust paired difference, whose lower
    bound the promotion's gate reads. ``estimate`` is None with fewer than 2 usable decisions."""
    log = ope_log_load(version=version, since=since, until=until, max_decisions=max_decisions)
    catalog = _needs_catalog(log, [candidate, baseline])
    cand = target_arrays(log=log, target=candidate, catalog=catalog)
    base = target_arrays(log=log, target=baseline, catalog=catalog)
    mask = cand.usable & base.usable
    usable = int(mask.sum())
    if usable < 2:
        return LiftResult(version=version, estimate=None, usable=usable, detail=f"{usable} usable decisions")
    rewarded = int((log.rewards[mask] > 0).sum())
    if rewarded < LIFT_MIN_REWARDED:
        # With (almost) no reward every term is 0 and the interval collapses to [0, 0]: that is
        # no evidence that the candidate is as good, only that nobody clicked yet.
        return LiftResult(
            version=version,
            estimate=None,
            usable=usable,
            detail=f"{rewarded} rewarded of {usable} usable decisions (at least {LIFT_MIN_REWARDED} needed)",
        )
    model = reward_model_fit(log=log)
    logged_model, cand_model = model_arrays(log=log, model=model, target=cand)
    _, base_model = model_arrays(log=log, model=model, target=base)
    estimate = ope_dr_difference(
        rewards=log.rewards[mask],
        logging_propensity=log.p_log[mask],
        target_propensity=cand.propensity[mask],
        baseline_propensity=base.propensity[mask],
        reward_model_logged=logged_model[mask],
        reward_model_target=cand_model[mask],
        reward_model_baseline=base_model[mask],
        confidence=confidence,
    )
    if not math.isfinite(estimate.lower):
        return LiftResult(version=version, estimate=None, usable=usable, detail="the interval is not finite")
    return LiftResult(
        version=version,
        estimate=estimate,
        usable=usable,
        detail=f"lift {estimate.value:+.4f} [{estimate.lower:+.4f}, {estimate.upper:+.4f}] on {usable} decisions",
    )


def estimate_as_json(estimate: Estimate) -> dict[str, Any]:
    return {
        "value": estimate.value,
        "lower": estimate.lower,
        "upper": estimate.upper,
        "std_error": estimate.std_error,
        "n": estimate.n,
        "effective_sample_size": estimate.effective_sample_size,
    }


def ope_result_as_json(result: OpeResult) -> dict[str, Any]:
    return {
        "version": result.version,
        "candidate": {"epsilon": result.candidate.epsilon, "scoring": result.candidate.scoring},
        "since": result.since,
        "until": result.until,
        "decisions": result.decisions,
        "randomized": result.randomized,
        "open_window": result.open_window,
        "read": result.read,
        "usable": result.usable,
        "observed_mean": result.observed_mean,
        "effective_sample_size": result.effective_sample_size,
        "mean_importance_weight": result.mean_importance_weight,
        "estimates": {name: estimate_as_json(e) for name, e in result.estimates.items()},
        "notes": result.notes,
    }
