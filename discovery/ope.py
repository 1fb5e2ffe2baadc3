"""Off-policy evaluation: what would a target policy have earned on decisions another policy logged?

Pure functions over numpy arrays, one element per logged decision ``i``:

- ``rewards[i]`` -- the reward observed for the action the logging policy took;
- ``logging_propensity[i]`` -- the probability the logging policy gave that action (> 0);
- ``target_propensity[i]`` -- the probability the target policy gives that same action in the
  same context (0 is allowed: the target would never have taken it);
- for the doubly robust estimator, a reward model evaluated twice per decision:
  ``reward_model_logged[i]`` is its prediction for the logged action, and
  ``reward_model_target[i]`` is its expectation under the target policy in that context
  (the target's action probabilities times the model's predictions, summed over actions).

The importance weight of a decision is ``w = target_propensity / logging_propensity``. The
estimators (Dudík, Langford and Li, "Doubly Robust Policy Evaluation and Learning", 2011):

- IPS averages ``w * r``. Unbiased whenever the logging policy gives every action the target
  can take a positive probability; its variance grows with the spread of the weights.
- Self-normalized IPS divides ``sum(w * r)`` by ``sum(w)`` instead of by ``n``. Slightly
  biased for small ``n`` but bounded by the range of the rewards, and usually much less
  variable than IPS when a few weights are large.
- Doubly robust starts from the model's estimate under the target and corrects it with the
  importance-weighted residual of the logged action: it averages
  ``model_target + w * (r - model_logged)``. Unbiased if either the propensities or the
  model are right; with a good model the residuals are small and so is the variance.

Every estimate carries a normal-approximation confidence interval from the sample standard
error of its per-decision terms. For SNIPS, a ratio, the terms are its linearization (delta
method): ``w_i * (r_i - V) / mean(w)``, whose mean is zero and whose spread gives the
standard error of the ratio to first order.

Evaluating the logging policy itself makes every weight 1, so IPS and SNIPS both return the
observed mean reward exactly. DR returns it plus the mean of ``model_target - model_logged``:
that difference has expectation zero under the logging policy, so DR equals the observed mean
only in expectation -- exactly so when the model predicts the same reward for every action in
a context (for instance a constant, or no model at all, i.e. zeros).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "METHOD_DR",
    "METHOD_DR_DIFFERENCE",
    "METHOD_IPS",
    "METHOD_SNIPS",
    "Estimate",
    "effective_sample_size",
    "importance_weights",
    "ope_all",
    "ope_dr",
    "ope_dr_difference",
    "ope_ips",
    "ope_snips",
]

METHOD_IPS: Final = "ips"
METHOD_SNIPS: Final = "snips"
METHOD_DR: Final = "dr"

DEFAULT_CONFIDENCE: Final = 0.95
MIN_DECISIONS: Final = 2  # a sample standard error needs at least two terms

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy-value estimate with its two-sided normal-approximation confidence interval."""

    value: float
    lower: float
    upper: float
    std_error: float
    n: int
    effective_sample_size: float
    method: str


def _as_vector(values: npt.ArrayLike, *, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN at index {int(np.flatnonzero(np.isnan(array))[0])}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains an infinite value at index {int(np.flatnonzero(~np.isfinite(array))[0])}")
    return array


def _check_same_length(**arrays: FloatArray) -> int:
    lengths = {name: int(array.shape[0]) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"arrays must have the same length, got {described}")
    n = next(iter(lengths.values()))
    if n < MIN_DECISIONS:
        raise ValueError(f"need at least {MIN_DECISIONS} logged decisions, got {n}")
    return n


def _check_probability(array: FloatArray, *, name: str, allow_zero: bool) -> None:
    bad_low = array <= 0.0 if not allow_zero else array < 0.0
    if bad_low.any():
        index = int(np.flatnonzero(bad_low)[0])
        bound = "> 0" if not allow_zero else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {float(array[index])!r} at index {index}")
    too_high = array > 1.0
    if too_high.any():
        index = int(np.flatnonzero(too_high)[0])
        raise ValueError(f"{name} must be <= 1, got {float(array[index])!r} at index {index}")


def _z_value(confidence: float) -> float:
    if not (isinstance(confidence, int | float) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _weights_checked(logging_propensity: npt.ArrayLike, target_propensity: npt.ArrayLike) -> FloatArray:
    logging = _as_vector(logging_propensity, name="logging_propensity")
    target = _as_vector(target_propensity, name="target_propensity")
    _check_same_length(logging_propensity=logging, target_propensity=target)
    _check_probability(logging, name="logging_propensity", allow_zero=False)
    _check_probability(target, name="target_propensity", allow_zero=True)
    return target / logging


def _estimate_from_terms(
    *, value: float, terms: FloatArray, weights: FloatArray, confidence: float, method: str
) -> Estimate:
    z = _z_value(confidence)
    n = int(terms.shape[0])
    std_error = float(np.std(terms, ddof=1)) / math.sqrt(n)
    return Estimate(
        value=value,
        lower=value - z * std_error,
        upper=value + z * std_error,
        std_error=std_error,
        n=n,
        effective_sample_size=effective_sample_size(weights),
        method=method,
    )


def importance_weights(*, logging_propensity: npt.ArrayLike, target_propensity: npt.ArrayLike) -> FloatArray:
    """Per decision, the target's probability of the logged action over the logging policy's."""
    return _weights_checked(logging_propensity, target_propensity)


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size of a weighted sample: the squared sum of the weights over
    the sum of their squares. It is ``n`` when all weights are equal and falls toward 1 as a
    few weights dominate; 0 when every weight is 0 (the target never takes a logged action)."""
    array = _as_vector(weights, name="weights")
    if (array < 0.0).any():
        raise ValueError("weights must be >= 0")
    sum_of_squares = float(np.dot(array, array))
    if sum_of_squares == 0.0:
        return 0.0
    return float(array.sum()) ** 2 / sum_of_squares


def ope_ips(
    *,
    rewards: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Estimate:
    """Inverse propensity scoring: the mean over decisions of ``w_i * r_i``."""
    reward = _as_vector(rewards, name="rewards")
    weights = _weights_checked(logging_propensity, target_propensity)
    _check_same_length(rewards=reward, propensities=weights)
    terms = weights * reward
    return _estimate_from_terms(
        value=float(terms.mean()), terms=terms, weights=weights, confidence=confidence, method=METHOD_IPS
    )


def ope_snips(
    *,
    rewards: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Estimate:
    """Self-normalized IPS: ``sum(w_i * r_i) / sum(w_i)``.

    Its standard error comes from the linearized terms ``w_i * (r_i - V) / mean(w)``. Refuses
    logs in which the target gives probability 0 to every logged action (the ratio is 0/0).
    """
    reward = _as_vector(rewards, name="rewards")
    weights = _weights_checked(logging_propensity, target_propensity)
    _check_same_length(rewards=reward, propensities=weights)
    mean_weight = float(weights.mean())
    if mean_weight == 0.0:
        raise ValueError("SNIPS is undefined: the target policy gives probability 0 to every logged action")
    value = float(np.dot(weights, reward)) / float(weights.sum())
    terms = weights * (reward - value) / mean_weight
    return _estimate_from_terms(value=value, terms=terms, weights=weights, confidence=confidence, method=METHOD_SNIPS)


def ope_dr(
    *,
    rewards: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    reward_model_logged: npt.ArrayLike,
    reward_model_target: npt.ArrayLike,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Estimate:
    """Doubly robust: the mean over decisions of ``m_target_i + w_i * (r_i - m_logged_i)``.

    ``m_logged_i`` is the model's predicted reward for the logged action and ``m_target_i`` the
    model's expected reward under the target policy in the same context.
    """
    reward = _as_vector(rewards, name="rewards")
    model_logged = _as_vector(reward_model_logged, name="reward_model_logged")
    model_target = _as_vector(reward_model_target, name="reward_model_target")
    weights = _weights_checked(logging_propensity, target_propensity)
    _check_same_length(
        rewards=reward,
        propensities=weights,
        reward_model_logged=model_logged,
        reward_model_target=model_target,
    )
    terms = model_target + weights * (reward - model_logged)
    return _estimate_from_terms(
        value=float(terms.mean()), terms=terms, weights=weights, confidence=confidence, method=METHOD_DR
    )


def ope_all(
    *,
    rewards: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    reward_model_logged: npt.ArrayLike | None = None,
    reward_model_target: npt.ArrayLike | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Estimate]:
    """IPS and SNIPS, and DR when a reward model is given, keyed by method name.

    The two reward-model arrays come together or not at all.
    """
    if (reward_model_logged is None) != (reward_model_target is None):
        raise ValueError("reward_model_logged and reward_model_target must both be given, or neither")
    estimates = {
        METHOD_IPS: ope_ips(
            rewards=rewards,
            logging_propensity=logging_propensity,
            target_propensity=target_propensity,
            confidence=confidence,
        ),
        METHOD_SNIPS: ope_snips(
            rewards=rewards,
            logging_propensity=logging_propensity,
            target_propensity=target_propensity,
            confidence=confidence,
        ),
    }
    if reward_model_logged is not None and reward_model_target is not None:
        estimates[METHOD_DR] = ope_dr(
            rewards=rewards,
            logging_propensity=logging_propensity,
            target_propensity=target_propensity,
            reward_model_logged=reward_model_logged,
            reward_model_target=reward_model_target,
            confidence=confidence,
        )
    return estimates


METHOD_DR_DIFFERENCE: Final = "dr_difference"


def ope_dr_difference(
    *,
    rewards: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    baseline_propensity: npt.ArrayLike,
    reward_model_logged: npt.ArrayLike,
    reward_model_target: npt.ArrayLike,
    reward_model_baseline: npt.ArrayLike,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Estimate:
    """The doubly robust estimate of ``V(target) - V(baseline)`` on the same logged decisions,
    with a paired interval: the mean of the per-decision differences of the two policies' DR
    terms, whose standard error is that of the differences (both terms share each decision's
    reward and model, so most of their noise cancels -- much narrower than subtracting two
    separate intervals). ``reward_model_baseline[i]`` is the model's expectation under the
    baseline policy. The effective sample size reported is the target's."""
    reward = _as_vector(rewards, name="rewards")
    model_logged = _as_vector(reward_model_logged, name="reward_model_logged")
    model_target = _as_vector(reward_model_target, name="reward_model_target")
    model_baseline = _as_vector(reward_model_baseline, name="reward_model_baseline")
    weights = _weights_checked(logging_propensity, target_propensity)
    baseline_weights = _weights_checked(logging_propensity, baseline_propensity)
    _check_same_length(
        rewards=reward,
        propensities=weights,
        baseline_propensities=baseline_weights,
        reward_model_logged=model_logged,
        reward_model_target=model_target,
        reward_model_baseline=model_baseline,
    )
    residual = reward - model_logged
    terms = (model_target + weights * residual) - (model_baseline + baseline_weights * residual)
    return _estimate_from_terms(
        value=float(terms.mean()), terms=terms, weights=weights, confidence=confidence, method=METHOD_DR_DIFFERENCE
    )
