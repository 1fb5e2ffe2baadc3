"""Registrations of policy health, made when the app is ready (see discovery.apps): the gate
metric of the promotion rollout (``discovery.gates``), the candidate policy's config and
flag (``discovery.policies``), and the invariant for the runbook's alert "exploration rate
deviates more than +-50 % from epsilon"."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from discovery import gates, policies  # noqa: F401 - the gate metric, the candidate's config and flag
from discovery.health import policy_health
from ops.invariants import Reading, figure_invariant


def exploration_deviation(*, minutes: int | None = None) -> Reading:
    """The largest relative deviation of a version's exploration rate from its epsilon,
    |rate - eps| / eps, over the versions with enough decisions to judge (policy_health's
    rule), in the last ``POLICY_HEALTH_INVARIANT_MINUTES``. Exploring at all at epsilon 0
    reads 1 (off by 100 %). No version judged: no value (not enough data)."""
    now = timezone.now()
    window = timedelta(minutes=minutes or int(settings.POLICY_HEALTH_INVARIANT_MINUTES))
    versions = policy_health(since=now - window, until=now).versions
    judged = [v for v in versions if v.exploration_judged]
    if not judged:
        decisions = sum(v.decisions for v in versions)
        return Reading(value=None, sample=decisions, detail="no version has enough decisions to judge")
    worst, deviation = None, -1.0
    for v in judged:
        rate, eps = v.exploration_rate or 0.0, v.epsilon or 0.0
        value = abs(rate - eps) / eps if eps > 0 else (1.0 if rate > 0 else 0.0)
        if value > deviation:
            worst, deviation = v, value
    assert worst is not None
    return Reading(
        value=round(deviation, 6),
        sample=sum(v.decisions for v in judged),
        detail=f"{worst.version}: {worst.exploration_detail}",
    )


@figure_invariant(
    name="discovery.exploration_rate_off_epsilon",
    app="discovery",
    description="Exploration rate of a ranker policy version off its epsilon: warn beyond 25 %, critical beyond"
    " 50 % (the runbook's alert: review the bandit config)",
    warn_above=0.25,
    critical_above=0.5,
    unit="x epsilon",
)
def exploration_rate_off_epsilon() -> Reading:
    return exploration_deviation()
