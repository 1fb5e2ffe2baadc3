"""Policy health: is each policy version exploring as configured, logging propensities that
can be trusted, and earning rewards? Reads only, computed by SQL aggregates.

The learning log may hold millions of decisions (10M in the benchmark), so nothing here
loads events: every figure is a ``COUNT`` / ``SUM`` over the rows of a bounded window
(``POLICY_HEALTH_WINDOW_HOURS``, the last 7 days by default), filtered by ``decided_at``
and, when one is asked for, ``policy_version`` (the ``(policy_version, decided_at)`` index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, FloatField, Func, IntegerField, Max, Min, Q, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import Case, When
from django.db.models.fields.json import KT
from django.db.models.functions import Abs, Cast, Coalesce, NullIf
from django.utils import timezone

from discovery.configs import RANKER_POLICY
from discovery.models import LearningEvent
from flags.config.selectors import config_get

# A logged propensity "is" one of the two epsilon-greedy values when it is this close (the
# ranker computes them with the same float arithmetic, so they match exactly in practice;
# the tolerance only absorbs a database's text round trip of the epsilon).
PROPENSITY_TOLERANCE = 1e-9
# The exploration-rate alert: off by more than this share of epsilon.
EXPLORATION_TOLERANCE = 0.5
# ... judged only when the band of +-50 % of epsilon is at least this many standard errors
# of the observed rate wide (a false alarm about 3 in 1000 under a right policy).
EXPLORATION_Z = 3.0
REWARD_Z = 1.96  # the mean reward's interval: 95 %


class JSONArrayLength(Func):
    """The number of elements of a JSON array column (PostgreSQL jsonb, SQLite JSON1)."""

    function = "jsonb_array_length"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, function="json_array_length", **extra_context)


@dataclass(frozen=True)
class Interval:
    value: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class PolicyHealth:
    """One policy version's figures over the window (see ``policy_health``)."""

    version: str
    decisions: int
    randomized: int
    explored: int
    exploration_rate: float | None
    epsilon: float | None  # the mean epsilon the version logged (one value unless it changed)
    epsilons: list[float]  # the lowest and highest logged (one value unless it changed)
    exploration_judged: bool
    exploration_alert: bool
    exploration_detail: str
    rewarded: int
    reward_closed: int  # decisions whose attribution window has closed (the mean's sample)
    reward_open: int  # decisions still inside it (left out of the mean)
    mean_reward: Interval
    off_propensity: int
    off_propensity_share: float | None  # of the propensity sample
    propensity_sample: int  # the newest randomized decisions the propensity figures read
    mean_importance_weight: float | None
    effective_sample_size: float | None
    first_decided_at: datetime | None = None
    last_decided_at: datetime | None = None


@dataclass(frozen=True)
class PolicyHealthReport:
    since: datetime
    until: datetime
    attribution_seconds: int
    versions: list[PolicyHealth]


def wilson_interval(*, successes: float, n: int, z: float = REWARD_Z) -> Interval:
    """The mean of 0/1 rewards with Wilson's score interval (sensible at 0 and at small n,
    where the normal approximation collapses to a point)."""
    if n <= 0:
        return Interval(value=None, lower=None, upper=None)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denominator
    return Interval(value=p, lower=max(0.0, centre - half), upper=min(1.0, centre + half))


def exploration_judgement(*, decisions: int, explored: int, epsilon: float | None) -> tuple[bool, bool, str]:
    """(judged, alert, words): the exploration rate against the epsilon logged.

    An alert when the rate is off by more than 50 % of epsilon, judged only with enough
    decisions to tell: at least ``POLICY_HEALTH_MIN_DECISIONS``, and so many that +-50 % of
    epsilon is ``EXPLORATION_Z`` binomial standard errors wide (at epsilon 0.08: about 400
    decisions). At epsilon 0 (safe mode) any exploration at all is an alert."""
    if decisions <= 0 or epsilon is None:
        return False, False, "no decisions"
    rate = explored / decisions
    minimum = int(settings.POLICY_HEALTH_MIN_DECISIONS)
    if epsilon <= 0.0:
        if explored:
            return True, True, f"{explored} explored at epsilon 0"
        return True, False, "epsilon 0, nothing explored"
    band = EXPLORATION_TOLERANCE * epsilon
    std_error = math.sqrt(epsilon * (1 - epsilon) / decisions) if epsilon < 1 else 0.0
    if decisions < minimum or band < EXPLORATION_Z * std_error:
        needed = max(minimum, math.ceil(EXPLORATION_Z**2 * (1 - epsilon) / (EXPLORATION_TOLERANCE**2 * epsilon)))
        return False, False, f"not enough decisions to tell (n={decisions} < {needed})"
    off = abs(rate - epsilon) > band
    words = f"{rate:.2%} vs epsilon {epsilon:.2%} (alert beyond {epsilon - band:.2%}..{epsilon + band:.2%})"
    return True, off, words


def health_window(*, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The window asked for, or the last ``POLICY_HEALTH_WINDOW_HOURS`` up to now."""
    until = until or timezone.now()
    since = since or until - timedelta(hours=int(settings.POLICY_HEALTH_WINDOW_HOURS))
    return since, until


@dataclass(frozen=True)
class PropensityHealth:
    sample: int  # randomized decisions examined (the newest POLICY_HEALTH_PROPENSITY_SAMPLE)
    off: int
    mean_weight: float | None
    effective_sample_size: float | None


def propensity_health(*, rows: QuerySet[LearningEvent]) -> PropensityHealth:
    """Over the newest ``POLICY_HEALTH_PROPENSITY_SAMPLE`` randomized decisions of ``rows``
    (one version's window): how many logged a ``p_exp`` that is neither epsilon-greedy value,
    and the uniform-random policy's importance weights ``(1/K) / p_exp`` (mean, Kish's
    effective sample size). These figures parse each row's candidate set (K), the costly part
    of a row, so they read a bounded sample through the ``(policy_version, decided_at)`` index
    instead of the whole window; the counts and rewards are over the whole window."""
    limit = int(settings.POLICY_HEALTH_PROPENSITY_SAMPLE)
    newest = rows.filter(randomized=True).order_by("-decided_at").values("id")[:limit]
    k = Cast(NullIf(JSONArrayLength(F("candidate_ids")), Value(0)), FloatField())
    annotated = (
        LearningEvent.objects.filter(pk__in=Subquery(newest))
        .annotate(h_eps=Cast(KT("context__epsilon"), FloatField()), h_k=k)
        .annotate(
            h_off_top=Abs(F("p_exp") - (Value(1.0) - F("h_eps") + F("h_eps") / F("h_k"))),
            h_off_other=Abs(F("p_exp") - F("h_eps") / F("h_k")),
            h_weight=Case(
                When(p_exp__gt=0, h_k__gt=0, then=Value(1.0) / (F("h_k") * F("p_exp"))),
                default=None,
                output_field=FloatField(),
            ),
        )
    )
    figures = annotated.aggregate(
        n=Count("id"),
        off=Count(
            "id",
            filter=Q(h_eps__isnull=True)
            | Q(h_k__isnull=True)
            | Q(h_off_top__gt=PROPENSITY_TOLERANCE, h_off_other__gt=PROPENSITY_TOLERANCE),
        ),
        w_n=Count("h_weight"),
        w_sum=Sum("h_weight"),
        w_sq=Sum(F("h_weight") * F("h_weight")),
    )
    w_n, w_sum, w_sq = int(figures["w_n"]), float(figures["w_sum"] or 0.0), float(figures["w_sq"] or 0.0)
    return PropensityHealth(
        sample=int(figures["n"]),
        off=int(figures["off"]),
        mean_weight=w_sum / w_n if w_n else None,
        effective_sample_size=(w_sum * w_sum / w_sq) if w_sq > 0 else None,
    )


def policy_health(
    *, since: datetime | None = None, until: datetime | None = None, version: str | None = None
) -> PolicyHealthReport:
    """Per policy version, over ``[since, until)`` (default: the last 7 days):

    - ``decisions``, ``randomized`` (drawn from a distribution, epsilon > 0) and ``explored``
      (the random branch taken); the exploration rate ``explored / decisions`` against the
      epsilon the version logged (``context["epsilon"]``; the mean when it changed within
      the window, since the expected exploration count is the sum of each decision's
      epsilon), with an alert beyond +-50 % of it once there are enough decisions to tell
      (``exploration_judgement``);
    - ``rewarded``: decisions with a reward joined (a click or save of the chosen item within
      the attribution window), open windows included -- a click counts at once;
    - the mean reward with a 95 % Wilson interval, over the decisions whose attribution window
      has closed (decided more than ``ranker.policy.attribution_seconds`` before ``until``).
      A reward is 1 or NULL: NULL after the window closed means no click came, so it counts as
      0; NULL while the window is open means "not yet", and counting it as 0 would bias the
      mean down by the share of recent decisions, so those decisions are left out (counted in
      ``reward_open``);
    - ``off_propensity``: randomized decisions whose logged ``p_exp`` is neither of the two
      values epsilon-greedy can give (``1 - eps + eps/K`` for the leader, ``eps/K`` for any
      other, K the candidate set's size) -- a logging or ranking bug when not 0;
    - the mean importance weight and Kish's effective sample size of the uniform-random policy
      evaluated on these logs (``w = (1/K) / p_exp`` over randomized decisions). Its mean is 1
      in expectation whatever K and epsilon when the propensities are right -- far from 1
      means they do not describe how the leaders were drawn -- and the effective sample size
      says how much the logs can tell about a policy that different from the logging one.
      These two read each row's candidate set, so they are computed over the newest
      ``POLICY_HEALTH_PROPENSITY_SAMPLE`` randomized decisions of each version
      (``propensity_sample``; ``propensity_health``).

    The counts are SQL aggregates over the window's rows (never loaded); a version filter
    uses the ``(policy_version, decided_at)`` index, and so does each version's propensity
    sample.
    """
    since, until = health_window(since=since, until=until)
    attribution = int(config_get(RANKER_POLICY).attribution_seconds)
    closed_before = until - timedelta(seconds=attribution)

    rows = LearningEvent.objects.filter(decided_at__gte=since, decided_at__lt=until)
    if version is not None:
        rows = rows.filter(policy_version=version)
    epsilon = Cast(KT("context__epsilon"), FloatField())
    closed = Q(decided_at__lt=closed_before)
    aggregates = (
        rows.annotate(h_eps=epsilon)
        .values("policy_version")
        .order_by("policy_version")
        .annotate(
            n=Count("id"),
            n_randomized=Count("id", filter=Q(randomized=True)),
            n_explored=Count("id", filter=Q(explored=True)),
            eps_sum=Sum("h_eps"),
            eps_n=Count("h_eps"),
            eps_min=Min("h_eps"),
            eps_max=Max("h_eps"),
            first=Min("decided_at"),
            last=Max("decided_at"),
            n_rewarded=Count("id", filter=Q(reward__isnull=False)),
            n_closed=Count("id", filter=closed),
            reward_closed_sum=Sum(Coalesce("reward", Value(0.0)), filter=closed),
        )
    )
    report: list[PolicyHealth] = []
    for row in aggregates:
        n = int(row["n"])
        eps_mean = round(float(row["eps_sum"]) / row["eps_n"], 12) if row["eps_n"] else None
        judged, alert, words = exploration_judgement(decisions=n, explored=int(row["n_explored"]), epsilon=eps_mean)
        n_closed = int(row["n_closed"])
        propensities = propensity_health(rows=rows.filter(policy_version=row["policy_version"]))
        report.append(
            PolicyHealth(
                version=row["policy_version"],
                decisions=n,
                randomized=int(row["n_randomized"]),
                explored=int(row["n_explored"]),
                exploration_rate=row["n_explored"] / n if n else None,
                epsilon=eps_mean,
                epsilons=sorted({float(e) for e in (row["eps_min"], row["eps_max"]) if e is not None}),
                exploration_judged=judged,
                exploration_alert=alert,
                exploration_detail=words,
                rewarded=int(row["n_rewarded"]),
                reward_closed=n_closed,
                reward_open=n - n_closed,
                mean_reward=wilson_interval(successes=float(row["reward_closed_sum"] or 0.0), n=n_closed),
                off_propensity=propensities.off,
                off_propensity_share=propensities.off / propensities.sample if propensities.sample else None,
                propensity_sample=propensities.sample,
                mean_importance_weight=propensities.mean_weight,
                effective_sample_size=propensities.effective_sample_size,
                first_decided_at=row["first"],
                last_decided_at=row["last"],
            )
        )
    return PolicyHealthReport(since=since, until=until, attribution_seconds=attribution, versions=report)


def exploration_alerts(*, since: datetime | None = None, until: datetime | None = None) -> list[PolicyHealth]:
    """The versions whose exploration rate is judged off epsilon by more than 50 %."""
    return [v for v in policy_health(since=since, until=until).versions if v.exploration_alert]
