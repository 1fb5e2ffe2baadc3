"""The statistics a rollout's controller decides with: pure functions, no database.

**Comparative gates** (treatment against control, Bernoulli counts: requests and how many of
them were bad) use a one-sided mixture sequential probability ratio test on the bad events
themselves. Given the requests each cohort served, every bad event falls in treatment with
probability

    theta(r) = r * n_t / (r * n_t + n_c)

where ``r`` is the ratio of treatment's rate to control's (exact for Poisson counts, and for
Bernoulli ones at the rates that matter here). The null is ``r <= r0 = 1 + max_lift``; the
alternative is a mixture over a fixed grid of worse ratios (``r0`` times ``LIFT_GRID``, equal
weights). The likelihood ratio of the treatment's share of the events,

    Lambda = mean over r of  (theta(r) / theta(r0)) ** x_t * ((1 - theta(r)) / (1 - theta(r0))) ** x_c,

is a nonnegative martingale under ``r = r0`` (a supermartingale for any better treatment: the
family has a monotone likelihood ratio), whatever the rate and however few the events: by
Ville's inequality the chance that it *ever* reaches ``1 / alpha`` is at most ``alpha``,
however often it is looked at. That is why the controller may look at every tick without
inflating false alarms; nothing is estimated from the data but the split of requests, which
a stage keeps fixed (and the sample-ratio check watches). It only ever rejects upwards
(treatment worse).

**Sample ratio mismatch**: the units seen in the treatment cohort against the configured
percentage, a chi-square test with one degree of freedom (``p = erfc(sqrt(x / 2))``) and a
floor on the deviation (relative to the expected share, with an absolute minimum), so a huge
sample does not hold a rollout over a rounding and a small stage is still checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flags.gates import Cohort

# The worse ratios the mixture weighs, as multiples of 1 + max_lift: sensitive to a
# regression of a quarter up to ten times, with no scale estimated from the data.
LIFT_GRID = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

SRM_P_MAX = 0.001  # a mismatch needs p below this...
SRM_MIN_DEVIATION = 0.005  # ...and the observed share off by at least half a percentage point...
SRM_MIN_RELATIVE_DEVIATION = 0.2  # ...or by a fifth of the expected share, whichever is less
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
    share_null: float  # treatment's expected share of the bad events at r = 1 + max_lift
    share_seen: float  # its observed share
    log_lambda: float
    log_threshold: float  # log(1 / alpha)

    @property
    def worse(self) -> bool:
        """Treatment's share of the bad events is above the null's (not yet significant)."""
        return self.share_seen > self.share_null

    def figures(self) -> dict[str, Any]:
        return {
            "rate_treatment": _round(self.rate_treatment),
            "rate_control": _round(self.rate_control),
            "share_null": _round(self.share_null),
            "share_seen": _round(self.share_seen),
            "log_lambda": _round(self.log_lambda, 4),
            "log_threshold": _round(self.log_threshold, 4),
        }


def _log_mean_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def mixture_log_lambda(*, events_t: int, events_c: int, n_t: int, n_c: int, r0: float) -> float:
    """log of the mixture likelihood ratio of treatment's share of the bad events (the null
    ``r = r0`` against ``r0 * LIFT_GRID``). Zero with no events: no evidence either way."""
    if events_t + events_c == 0:
        return 0.0

    def share(r: float) -> float:
        return r * n_t / (r * n_t + n_c)

    base = share(r0)
    logs = []
    for lift in LIFT_GRID:
        theta = share(r0 * lift)
        logs.append(events_t * math.log(theta / base) + events_c * math.log((1 - theta) / (1 - base)))
    return _log_mean_exp(logs)


def comparative_test(*, treatment: Cohort, control: Cohort, alpha: float, max_lift: float = 0.0) -> ComparativeResult:
    """The sequential look at cumulative counts: is treatment's rate above ``(1 + max_lift)``
    times control's, at level ``alpha`` (already corrected for the number of gates)?"""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if treatment.n <= 0 or control.n <= 0:
        raise ValueError("both cohorts need observations")
    r0 = 1.0 + max_lift
    events = treatment.events + control.events
    share_null = r0 * treatment.n / (r0 * treatment.n + control.n)
    log_lambda = mixture_log_lambda(
        events_t=treatment.events, events_c=control.events, n_t=treatment.n, n_c=control.n, r0=r0
    )
    log_threshold = math.log(1.0 / alpha)
    share_seen = treatment.events / events if events else 0.0
    return ComparativeResult(
        breach=share_seen > share_null and log_lambda >= log_threshold,
        rate_treatment=treatment.events / treatment.n,
        rate_control=control.events / control.n,
        share_null=share_null,
        share_seen=share_seen,
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
    # The floor shrinks with a small stage (a fifth of 0.5 % is 0.1 point), so a 0.5 % stage
    # that serves nobody, or everybody, is still a mismatch.
    min_deviation = min(min_deviation, SRM_MIN_RELATIVE_DEVIATION * min(expected, 1 - expected) or min_deviation)
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
