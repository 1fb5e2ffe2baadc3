"""The SLO guard, against real request metrics rows: at a burn rate of 2 it turns safe mode on
by itself (history says slo-guard) and alerts once; below 2, with too few requests, or with
safe mode on already it does nothing; it never turns safe mode off, and holds off for a while
after an operator did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from waffle.models import Switch

import discovery.guard as guard
from discovery.guard import GUARD_ALREADY_ON, GUARD_HELD, GUARD_QUIET, GUARD_TRIPPED, slo_guard_run
from discovery.tasks_operating import slo_guard
from flags.evaluation import safe_mode_active
from flags.names import SAFE_MODE
from flags.services import switch_set
from ops.models import LATENCY_FIELDS
from ops.slo.services import RouteMinuteDelta, route_minutes_add
from tests.support.request_minutes import route_minute_put

pytestmark = pytest.mark.django_db


def burn(*, errors: int, count: int = 1000, route: str = "matches") -> None:
    """``errors`` server errors of ``count`` requests to ``route``, two minutes ago (so in
    both the 5 min and the 1 h window). matches.availability's budget is 0.5 %: 10 of 1000
    burn it at 2x."""
    route_minute_put(route, count=count, errors=errors, minutes_ago=2)


@pytest.fixture
def alerts(monkeypatch) -> list[dict]:
    sent: list[dict] = []
    monkeypatch.setattr(guard, "alert_send", lambda **message: sent.append(message))
    return sent


def safe_mode_row() -> bool:
    switch = Switch.objects.filter(name=SAFE_MODE).first()
    return bool(switch and switch.active)


def history() -> list[tuple[bool, str, object]]:
    rows = Switch.history.filter(name=SAFE_MODE).order_by("history_id")  # type: ignore[attr-defined]
    return [(r.active, r.history_change_reason or "", r.history_user_id) for r in rows]


@pytest.fixture(autouse=True)
def _safe_mode_off():
    switch_set(SAFE_MODE, False, reason="test starts with safe mode off")
    Switch.history.filter(name=SAFE_MODE).delete()  # type: ignore[attr-defined]  # no operator turned it off


def test_below_2_the_guard_does_nothing(alerts):
    burn(errors=9)  # 1.8x
    outcome = slo_guard_run()
    assert outcome.action == GUARD_QUIET
    assert outcome.slo == "matches.availability" and outcome.burn_rate == pytest.approx(1.8)
    assert not safe_mode_row() and alerts == [] and history() == []


def test_at_2_the_guard_turns_safe_mode_on_names_itself_in_history_and_alerts_once(alerts):
    burn(errors=10)  # 2.0x (the budget's float arithmetic makes it 1.9999...: still 2)
    outcome = slo_guard_run()
    assert outcome.action == GUARD_TRIPPED and outcome.slo == "matches.availability"
    assert safe_mode_row() and safe_mode_active()
    [(active, reason, user)] = history()
    assert active and reason.startswith("slo-guard: matches.availability burn rate 2.00x") and user is None
    [alert] = alerts
    assert alert["key"] == "slo-guard:safe-mode" and alert["state"] == "critical"
    assert alert["fields"]["slo"] == "matches.availability" and alert["fields"]["by"] == "slo-guard"

    # Every minute after, while it stays on: nothing more, neither a write nor an alert.
    burn(errors=500)
    assert slo_guard_run().action == GUARD_ALREADY_ON
    assert slo_guard.run()["action"] == GUARD_ALREADY_ON  # the beat task, run here
    assert len(alerts) == 1 and len(history()) == 1 and safe_mode_row()


def test_with_safe_mode_already_on_the_guard_is_a_no_op(alerts, django_user_model):
    operator = django_user_model.objects.create(username="oncall")
    switch_set(SAFE_MODE, True, reason="operator: canary phase 1", actor=operator)
    before = history()
    burn(errors=100)  # 20x
    assert slo_guard_run().action == GUARD_ALREADY_ON
    assert alerts == [] and history() == before


def test_the_guard_never_turns_safe_mode_off_and_holds_off_after_an_operator_did(alerts, settings, django_user_model):
    burn(errors=10)
    assert slo_guard_run().action == GUARD_TRIPPED
    burn(errors=0, count=100_000, route="matches")  # the burn is over
    assert slo_guard_run().action == GUARD_QUIET
    assert safe_mode_row()  # still on: only an operator turns it off

    operator = django_user_model.objects.create(username="oncall")
    switch_set(SAFE_MODE, False, reason="incident judged", actor=operator)
    burn(errors=4000, count=100_000)  # burning again (about 4x), within the hold-off
    held = slo_guard_run()
    assert held.action == GUARD_HELD and "oncall turned safe mode off" in held.detail
    assert not safe_mode_row() and len(alerts) == 1

    settings.DISCOVERY_SLO_GUARD_HOLDOFF_SECONDS = 0  # the hold-off is over: it guards again
    assert slo_guard_run().action == GUARD_TRIPPED
    assert safe_mode_row() and len(alerts) == 2


def test_too_few_requests_never_trip_the_guard(alerts, settings):
    settings.OPS_INVARIANT_MIN_SAMPLE = 20
    burn(errors=10, count=10)  # every request failed, but 10 requests
    outcome = slo_guard_run()
    assert outcome.action == GUARD_QUIET and outcome.sample == 10
    assert not safe_mode_row() and alerts == []


def test_a_slow_sign_in_burn_trips_the_guard_too(alerts):
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    # 100 token sign-ins, 50 of them between 500 ms and 1 s: read linearly, 40 are slower
    # than 600 ms, 40 % over a 5 % budget: 8x.
    buckets = tuple({"le_250": 50, "le_1000": 50}.get(name, 0) for name in LATENCY_FIELDS)
    route_minutes_add(
        deltas=[
            RouteMinuteDelta(
                minute=minute,
                route="auth-token",
                flag="",
                cohort="",
                count=100,
                errors=0,
                duration_ms_sum=0.0,
                buckets=buckets,
            )
        ]
    )
    outcome = slo_guard_run(now=datetime.now(UTC))
    assert outcome.action == GUARD_TRIPPED and outcome.slo == "auth.login"
    assert outcome.burn_rate == pytest.approx(8.0)
