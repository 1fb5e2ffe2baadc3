"""The statistics a rollout's controller decides with: pure functions, no database.

**Comparative gates** (treatment against control, Bernoulli counts: requests and how many of
them were bad) use a one-sided mixture sequential probability ratio test (mSPRT, Johari,
Pekelis and Walsh, "Always valid inference", 2017) on the difference of rates

    theta = rate_treatment - (1 + max_lift) * rate_control,     H0: theta <= 0.

With the cumulative estimate ``theta_hat`` ~ N(theta, V) and a normal mixture N(0, tau^2)
over the alternative, the likelihood ratio is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * theta_hat^2 / (2 V (V + tau^2)))

and, under H0, ``Lambda`` is a nonnegative (super)martingale: by Ville's inequality the
chance that it *ever* reaches ``1 / alpha`` is at most ``alpha``, however often it is
looked at. That is why the controller may look at every tick without inflating false
alarms. The test rejects only upwards (treatment worse), using the two-sided mixture: valid
and a little conservative. ``V`` is computed at the null's boundary (the pooled rate split
so that treatment = (1 + max_lift) * control), so a cohort with no bad events yet does not
make the variance zero. ``tau`` is the scale of effect the test is most sensitive to; it is
tied to the baseline rate (``TAU_LIFT`` times it: a doubling by default), with a floor.

**Sample ratio mismatch**: the units seen in the treatment cohort against the configured
percentage, a chi-square test with one degree of freedom (``p = erfc(sqrt(x / 2))``) and a
floor on the absolute deviation, so a huge sample does not hold a rollout over a rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flags.gates import Cohort

# The mixture's scale, as a multiple of the baseline (pooled) rate: the test is most
# sensitive to a treatment rate about (1 + TAU_LIFT) times the control's.
TAU_LIFT = 1.0
# tau never goes below this (absolute rate), so a baseline of zero errors still tests.
TAU_FLOOR = 0.001

SRM_P_MAX = 0.001  # a mismatch needs p below this...
SRM_MIN_DEVIATION = 0.005  # ...and the observed share off by at least half a percentage point
SRM_MIN_UNITS = 100  # fewer units than this: no test (nothing to say yet)


def _round(value: float, digits: int = 6) -> float:
    return float(round(value, digits))


@dataclass(frozen=True)
class ComparativeResult:
    """One look of the sequential test: ``breach`` when treatment is worse than control (by
    more than ``max_lift``) at the corrected level."""

    breach: bool
    rate_treatment: float
    rate_control: float
    theta: float  # rate_t - (1 + max_lift) * rate_c
    variance: float
    tau: float
    log_lambda: float
    log_threshold: float  # log(1 / alpha)

    def figures(self) -> dict[str, Any]:
        return {
            "rate_treatment": _round(self.rate_treatment),
            "rate_control": _round(self.rate_control),
            "theta": _round(self.theta),
            "variance": float(f"{self.variance:.6g}"),
            "tau": _round(self.tau),
            "log_lambda": _round(self.log_lambda, 4),
            "log_threshold": _round(self.log_threshold, 4),
        }


def msprt_log_lambda(*, theta_hat: float, variance: float, tau: float) -> float:
    """log of the normal-mixture likelihood ratio for an estimate ``theta_hat`` with variance
    ``variance`` (H0: theta = 0, mixture N(0, tau^2)). Zero when there is no information."""
    if variance <= 0 or tau <= 0:
        return 0.0
    tau2 = tau * tau
    total = variance + tau2
    return 0.5 * math.log(variance / total) + tau2 * theta_hat * theta_hat / (2.0 * variance * total)


def comparative_test(*, treatment: Cohort, control: Cohort, alpha: float, max_lift: float = 0.0) -> ComparativeResult:
    """The mSPRT look at cumulative counts: is treatment's rate above ``(1 + max_lift)``
    times control's, at level ``alpha`` (already corrected for the number of gates)?"""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if treatment.n <= 0 or control.n <= 0:
        raise ValueError("both cohorts need observations")
    factor = 1.0 + max_lift
    rate_t = treatment.events / treatment.n
    rate_c = control.events / control.n
    theta_hat = rate_t - factor * rate_c
    # The rates at the null's boundary (treatment = factor * control) that explain the events
    # seen: events_t + events_c = n_t * factor * p_c + n_c * p_c.
    p_c0 = (treatment.events + control.events) / (treatment.n * factor + control.n)
    p_t0 = min(factor * p_c0, 1.0)
    variance = p_t0 * (1 - p_t0) / treatment.n + factor * factor * p_c0 * (1 - p_c0) / control.n
    tau = max(TAU_LIFT * p_c0, TAU_FLOOR)
    log_lambda = msprt_log_lambda(theta_hat=theta_hat, variance=variance, tau=tau)
    log_threshold = math.log(1.0 / alpha)
    return ComparativeResult(
        breach=theta_hat > 0 and log_lambda >= log_threshold,
        rate_treatment=rate_t,
        rate_control=rate_c,
        theta=theta_hat,
        variance=variance,
        tau=tau,
        log_lambda=log_lambda,
        log_threshold=log_threshold,
    )


def chi2_p_1dof(statistic: float) -> float:
    """The upper tail of a chi-square with one degree of freedom."""
    if statistic <= 0:
        return 1.0
    return math.erfc(math.sqrt(statistic / 2.0))


@dataclass(frozen=True)
class SrmResult:
    mismatch: bool
    tested: bool  # False: too few units to say anything
    treatment_units: int
    control_units: int
    expected_share: float
    observed_share: float
    chi2: float
    p: float

    def figures(self) -> dict[str, Any]:
        return {
            "treatment_units": self.treatment_units,
            "control_units": self.control_units,
            "expected_share": _round(self.expected_share),
            "observed_share": _round(self.observed_share),
            "chi2": _round(self.chi2, 4),
            "p": float(f"{self.p:.6g}"),
        }


def srm_test(
    *,
    treatment_units: int,
    control_units: int,
    percent: float,
    p_max: float = SRM_P_MAX,
    min_deviation: float = SRM_MIN_DEVIATION,
    min_units: int = SRM_MIN_UNITS,
) -> SrmResult:
    """Whether the treatment cohort's share of units disagrees with ``percent``."""
    total = treatment_units + control_units
    expected = min(max(percent / 100.0, 0.0), 1.0)
    observed = treatment_units / total if total else 0.0
    if total < min_units or expected in (0.0, 1.0):
        # At 0 % or 100 % there is one cohort only: any unit on the other side is a
        # mismatch no test is needed for, but also nothing a chi-square can weigh.
        mismatch = total >= min_units and abs(observed - expected) >= min_deviation
        return SrmResult(
            mismatch=mismatch,
            tested=total >= min_units,
            treatment_units=treatment_units,
            control_units=control_units,
            expected_share=expected,
            observed_share=observed,
            chi2=0.0,
            p=0.0 if mismatch else 1.0,
        )
    exp_t = total * expected
    exp_c = total * (1 - expected)
    chi2 = (treatment_units - exp_t) ** 2 / exp_t + (control_units - exp_c) ** 2 / exp_c
    p = chi2_p_1dof(chi2)
    return SrmResult(
        mismatch=p < p_max and abs(observed - expected) >= min_deviation,
        tested=True,
        treatment_units=treatment_units,
        control_units=control_units,
        expected_share=expected,
        observed_share=observed,
        chi2=chi2,
        p=p,
    )
