"""The Day-0 runbook's canary (safe mode for internal testing, then learning for 5 %, 25 %,
100 % of members, rolled back on a breach) as a staged rollout of ``learning.enabled``,
driven through the staff API with exactly the bodies the README gives."""

from __future__ import annotations

import pytest

from discovery.models import LearningEvent
from discovery.names import LEARNING_ENABLED
from discovery.services import catalog_seed_day0, suggestions_for_user, user_interests_set
from flags.evaluation import flag_enabled, rollout_bucket, safe_mode_active
from flags.models import Flag

pytestmark = pytest.mark.django_db

# The README's bodies ("The Day-0 canary"), kept in one place so the docs and the test agree.
FLAG_OFF_FOR_ALL = {"everyone": None, "percent": 0, "reason": "Day-0 canary: learning by percentage"}
SAFE_MODE_ON = {"active": True, "reason": "Day-0 phase 1: internal testing"}
SAFE_MODE_OFF = {"active": False, "reason": "Day-0 phase 2: the canary starts"}
CANARY = {
    "name": "day0-learning",
    "flag": "learning.enabled",
    "stages": [5, 25, 100],
    "min_dwell_seconds": 172800,
    "gates": [
        {"metric": "http.error_rate", "max_lift": 0.1},
        {"metric": "invariant.discovery.http_5xx_rate", "op": "<=", "threshold": 1},
        {"metric": "discovery.auth_login_p95_ms", "op": "<=", "threshold": 600},
        {"metric": "slo.burn_rate_max", "op": "<", "threshold": 2},
        {"metric": "invariant.discovery.exploration_rate_off_epsilon", "op": "<=", "threshold": 1},
        {"metric": "invariant.discovery.queue_p95_age_seconds", "op": "<=", "threshold": 1},
    ],
    "rollback_action": "safe_mode",
    "reason": "Day-0 canary",
}


def test_the_day0_canary_serves_learning_to_its_share_only_and_rolls_back_into_safe_mode(
    staff_client, django_user_model, settings
):
    settings.DISCOVERY_RATE_SUGGEST = ""
    catalog_seed_day0()
    # Phase 1: safe mode for everyone while operators test by hand.
    assert staff_client.put("/api/staff/switches/global.safe_mode", SAFE_MODE_ON).status_code == 200
    assert safe_mode_active()
    # The data migration turned learning on for everyone; the canary needs it by percentage.
    assert staff_client.patch(f"/api/staff/flags/{LEARNING_ENABLED}", FLAG_OFF_FOR_ALL).status_code == 200
    created = staff_client.post("/api/staff/rollouts", CANARY)
    assert created.status_code == 201, created.json()
    # Phase 2: safe mode off and the rollout started: learning for 5 % of members.
    assert staff_client.put("/api/staff/switches/global.safe_mode", SAFE_MODE_OFF).status_code == 200
    started = staff_client.post("/api/staff/rollouts/day0-learning/actions", {"action": "start", "reason": "go"})
    assert started.status_code == 200 and started.json()["serving"] == 5.0

    members = [django_user_model.objects.create_user(username=f"canary-{i}") for i in range(60)]
    group = Flag.objects.get(name=LEARNING_ENABLED).rollout_group or LEARNING_ENABLED
    inside = [m for m in members if rollout_bucket(group=group, unit=str(m.pk)) <= 5]
    outside = [m for m in members if m not in inside]
    assert inside and outside  # 60 members: a few in the 5 % (the seed is fixed by their ids)
    for member in members:
        assert flag_enabled(LEARNING_ENABLED, user=member) == (member in inside)
        user_interests_set(user=member, affinities={"ai": 0.9, "fintech": 0.5})
        suggestions_for_user(user=member)
    # Only the canary's members are logged (and explored for); the others are served as before.
    assert set(LearningEvent.objects.values_list("user_id", flat=True)) == {m.pk for m in inside}

    # A breach (here: an operator's rollback, the controller's own path) puts safe mode back on
    # and learning at 0 %.
    back = staff_client.post("/api/staff/rollouts/day0-learning/actions", {"action": "rollback", "reason": "burn"})
    assert back.status_code == 200 and back.json()["serving"] == 0.0
    assert safe_mode_active()
    assert not any(flag_enabled(LEARNING_ENABLED, user=m) for m in inside)
