"""Which ranking policy serves a member: the current one (config ``ranker.policy``) or, while
a new policy version is being promoted, the candidate (config ``ranker.candidate``) for the
members the flag ``ranker.candidate`` lets in.

The promotion is a staged rollout of that flag (``flags.rollouts``: 5 %, 25 %, 100 % by
default) whose gates include ``discovery.ope_lower_bound`` (``discovery.gates``): the lower
bound of the candidate's estimated lift over the current policy, off-policy, on the current
version's logs. The candidate logs its decisions under its own version, so its logs are
never pooled with the current one's; at 100 % an operator makes it the current policy.

Safe mode serves the current policy's safe value to everyone: the candidate's config reads
``policy: null`` then, and the flag reads off.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field

from discovery.configs import RANKER_POLICY, RankerPolicy
from discovery.ope_eval import SCORING_AFFINITY, SCORING_POPULARITY, VERSION_SCORING, TargetPolicy
from discovery.selectors import Scored, candidates_scored_for_user
from discovery.serving import Catalog, catalog_current
from flags.config.registry import config_declare
from flags.config.selectors import config_get
from flags.evaluation import flag_enabled
from flags.models import Flag
from flags.names import FLAG_SAFE_VALUES
from flags.rollouts.models import Rollout
from flags.rollouts.services import rollout_create

logger = logging.getLogger(__name__)

RANKER_CANDIDATE_FLAG = "ranker.candidate"  # the share of members the candidate policy serves
OPE_GATE_METRIC = "discovery.ope_lower_bound"

# Safe mode: nobody is served the candidate.
FLAG_SAFE_VALUES[RANKER_CANDIDATE_FLAG] = False


class CandidatePolicy(RankerPolicy):
    """A new policy version: the current policy's fields (its scoring among them) under a new
    version name, so it logs under its own name (never pooled with the current one's logs)."""

    version: str = Field(
        default="epsilon_greedy_v2", pattern=r"^[a-z0-9_]{1,50}$", description="The new version's name."
    )


class RankerCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: CandidatePolicy | None = Field(default=None, description="The candidate policy; null: none.")


RANKER_CANDIDATE = config_declare(
    "ranker.candidate",
    schema=RankerCandidate,
    default=RankerCandidate(),
    safe=RankerCandidate(),
    description="A new ranker policy version being promoted (served to the members of flag ranker.candidate).",
)


def policy_scoring(policy: RankerPolicy) -> str:
    """How ``policy`` scores candidates (a ``RankerPolicy`` without a scoring: its version's)."""
    scoring = getattr(policy, "scoring", None)
    return str(scoring) if scoring else VERSION_SCORING.get(policy.version, SCORING_AFFINITY)


def policy_target(policy: RankerPolicy) -> TargetPolicy:
    """The policy as off-policy evaluation sees it (epsilon and scoring)."""
    return TargetPolicy(epsilon=float(policy.epsilon), scoring=policy_scoring(policy))


def candidate_policy() -> CandidatePolicy | None:
    """The configured candidate, if any and if it is really a new version."""
    candidate = config_get(RANKER_CANDIDATE).policy
    if candidate is None:
        return None
    if candidate.version == config_get(RANKER_POLICY).version:
        logger.warning("ranker.candidate names the current version %s: ignored", candidate.version)
        return None
    return candidate


def policy_for_user(*, user: User) -> RankerPolicy:
    """The policy that serves ``user``: the candidate for the members in flag
    ``ranker.candidate`` while a candidate is configured, the current policy otherwise (and
    for everyone in safe mode, where the candidate reads null and the flag off)."""
    current = config_get(RANKER_POLICY)
    candidate = candidate_policy()
    if candidate is None or not flag_enabled(RANKER_CANDIDATE_FLAG, user=user):
        return current
    # The attribution window is the platform's, not a policy's: rewards are joined, decisions
    # kept from the GC and windows judged closed by the one in ranker.policy.
    return candidate.model_copy(update={"attribution_seconds": current.attribution_seconds})


def policy_scored(*, user: User, policy: RankerPolicy, fallback_size: int, catalog: Catalog | None = None) -> Scored:
    """The member's candidate set scored the way ``policy`` scores: v1's affinity x
    popularity, or popularity alone. The fallback slate is scored by popularity whatever the
    policy. ``catalog``: the process's serving catalog to read (the current one if None)."""
    catalog = catalog or catalog_current()
    scored = candidates_scored_for_user(user=user, fallback_size=fallback_size, catalog=catalog)
    if not scored.personal or policy_scoring(policy) != SCORING_POPULARITY:
        return scored
    popularity = catalog.popularity
    return Scored(
        candidate_ids=scored.candidate_ids,
        scores=[popularity.get(c, 0.0) for c in scored.candidate_ids],
        personal=True,
    )


def policy_log_context(policy: RankerPolicy) -> dict[str, Any]:
    """What a decision's ``context`` should add so OPE knows how it was scored."""
    return {"scoring": policy_scoring(policy)}


def policy_rollout_create(
    *,
    name: str = "ranker-candidate",
    stages: list[float] | None = None,
    min_lift: float = 0.0,
    extra_gates: list[dict[str, Any]] | None = None,
    actor: User | None = None,
    reason: str = "",
    **options: Any,
) -> Rollout:
    """A draft rollout of flag ``ranker.candidate`` (made at 0 % if missing) gated on the
    candidate's OPE lower bound: it advances only while the lower bound of the candidate's
    estimated lift over the current policy is at least ``min_lift`` (0: not worse, at 95 %
    confidence; -0.01: at most a point worse), holds while there are too few usable
    decisions, and rolls back after ``breaches_to_rollback`` breaches. ``extra_gates`` and
    ``options`` go to ``rollout_create`` as they are (other gates, dwell, samples)."""
    with transaction.atomic():
        Flag.objects.get_or_create(
            name=RANKER_CANDIDATE_FLAG,
            defaults={"percent": 0, "note": "Members served the candidate ranker policy (ranker.candidate)."},
        )
        gates = [{"metric": OPE_GATE_METRIC, "op": ">=", "threshold": float(min_lift)}, *(extra_gates or [])]
        return rollout_create(
            name=name,
            flag=RANKER_CANDIDATE_FLAG,
            stages=stages,
            gates=gates,
            actor=actor,
            reason=reason or "promote the candidate ranker policy",
            **options,
        )
