"""Discovery's gate metric for the promotion of a new policy version (see ``discovery.policies``).

``discovery.ope_lower_bound``: the lower end of the 95 % interval of the candidate policy's
estimated lift in mean reward over the current policy, doubly robust with a paired interval
(``ope_eval.ope_lift``), on the current version's logged decisions of the last
``OPE_WINDOW_HOURS`` up to the tick (not only the stage's window: the current version's logs
are the evidence, and they accrue whatever the stage). An absolute metric: a rollout gates
it with ``{"metric": "discovery.ope_lower_bound", "op": ">=", "threshold": 0}``.

No candidate configured, no logs of the current version, or fewer than 2 usable (randomized,
window closed) decisions: no data, which holds the rollout (never advances it, never rolls it
back); the rollout's ``min_gate_sample`` applies to the usable decisions. The reading is
cached ``OPE_GATE_CACHE_SECONDS`` per (version, candidate, current policy), since the
controller ticks every 30 s and an evaluation reads up to ``OPE_GATE_MAX_DECISIONS`` rows.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache

from discovery.configs import RANKER_POLICY
from discovery.models import LearningEvent
from discovery.ope_eval import ope_lift
from discovery.policies import OPE_GATE_METRIC, candidate_policy, policy_target
from flags.config.selectors import config_get
from flags.gates import GateReading, GateWindow, gate_metric


def _cache_key(*parts: object) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"discovery:ope-gate:{digest}"


@gate_metric(
    name=OPE_GATE_METRIC,
    app="discovery",
    description="Lower bound (95 %) of the candidate ranker policy's OPE lift in mean reward over the current one",
    unit="reward",
)
def ope_lower_bound(window: GateWindow) -> GateReading:
    candidate = candidate_policy()
    if candidate is None:
        return GateReading(value=None, detail="no candidate policy (config ranker.candidate is null)")
    current = config_get(RANKER_POLICY)
    version = current.version
    if not LearningEvent.objects.filter(policy_version=version).exists():
        return GateReading(value=None, detail=f"no decisions logged by {version}")
    since = window.until - timedelta(hours=int(settings.OPE_WINDOW_HOURS))
    ttl = int(settings.OPE_GATE_CACHE_SECONDS)
    key = _cache_key(version, candidate.model_dump(mode="json"), current.model_dump(mode="json"))
    if ttl > 0:
        cached = cache.get(key)
        if isinstance(cached, dict):
            return GateReading(**cached)
    lift = ope_lift(
        version=version,
        candidate=policy_target(candidate),
        baseline=policy_target(current),
        since=since,
        until=window.until,
        max_decisions=int(settings.OPE_GATE_MAX_DECISIONS),
    )
    reading: dict[str, Any]
    if lift.estimate is None:
        reading = {"value": None, "sample": lift.usable, "detail": f"not enough data: {lift.detail}"}
    else:
        reading = {
            "value": lift.estimate.lower,
            "sample": lift.usable,
            "detail": f"{candidate.version} vs {version}: {lift.detail}",
        }
    if ttl > 0:
        cache.set(key, reading, ttl)
    return GateReading(**reading)
