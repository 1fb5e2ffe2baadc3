"""The staff API for rollouts: create (bad values 400 naming the field), act, read the
timeline and the gate metrics; refused to anyone but staff."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flags.models import Flag
from flags.rollouts.models import Rollout
from flags.services import flag_enabled
from tests.flags.rollout_fakes import FakeComparative
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.django_db

URL = "/api/staff/rollouts"


@pytest.fixture
def beta(fake_metrics):
    fake_metrics("test.errors", FakeComparative(), comparative=True)
    return Flag.objects.create(name="beta_feed", percent=Decimal(0))


def test_create_start_advance_and_roll_back_through_the_api(staff_client, beta):
    created = staff_client.post(
        URL,
        {"name": "beta-canary", "flag": "beta_feed", "gates": [{"metric": "test.errors", "max_lift": 0.1}]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["state"], body["stages"], body["actions"]) == ("draft", [5.0, 25.0, 100.0], ["start"])

    act = f"{URL}/beta-canary/actions"
    started = staff_client.post(act, {"action": "start", "reason": "go"}, format="json").json()
    assert (started["state"], started["percent"]) == ("running", 5.0)
    assert Flag.objects.get(name="beta_feed").percent == 5
    advanced = staff_client.post(act, {"action": "advance"}, format="json").json()
    assert advanced["percent"] == 25.0
    back = staff_client.post(act, {"action": "rollback", "reason": "errors up"}, format="json").json()
    assert (back["state"], back["actions"], back["serving"]) == ("rolled_back", ["start"], 0.0)
    assert Flag.objects.get(name="beta_feed").percent == 0 and not flag_enabled("beta_feed", unit="u1")

    refused = staff_client.post(act, {"action": "pause"}, format="json")
    assert_error_shape(refused, 409, "conflict")
    timeline = staff_client.get(f"{URL}/beta-canary/decisions").json()
    assert [d["decision"] for d in timeline] == ["rollback", "advance", "start"]
    assert timeline[0]["reason"] == "errors up" and timeline[0]["actor"] == "ops"
    assert staff_client.get(URL).json()[0]["name"] == "beta-canary"
    gates = {g["name"]: g for g in staff_client.get(f"{URL}/gates").json()}
    assert gates["http.error_rate"]["comparative"] is True and "http.p95_ms" in gates


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "flag": "nope"}, "flag"),
        ({"name": "has space", "flag": "beta_feed"}, "name"),
        ({"name": "y" * 101, "flag": "beta_feed"}, "name"),
        ({"name": "x", "flag": "beta_feed", "stages": [25, 5]}, "stages"),
        ({"name": "x", "flag": "beta_feed", "stages": [5, 101]}, "stages.1"),
        ({"name": "x", "flag": "beta_feed", "stages": "five"}, "stages"),
        (
            {"name": "x", "flag": "beta_feed", "gates": [{"metric": "no.such.metric", "op": "<=", "threshold": 1}]},
            "gates",
        ),
        ({"name": "x", "flag": "beta_feed", "gates": {"metric": "http.p95_ms"}}, "gates"),
        ({"name": "x", "flag": "beta_feed", "min_dwell_seconds": -1}, "min_dwell_seconds"),
        ({"name": "x", "flag": "beta_feed", "breaches_to_rollback": 0}, "breaches_to_rollback"),
        ({"name": "x", "flag": "beta_feed", "alpha": 2}, "alpha"),
        ({"name": "x", "flag": "beta_feed", "rollback_action": "explode"}, "rollback_action"),
    ],
)
def test_a_bad_rollout_is_refused_naming_the_field(staff_client, beta, body, field):
    assert_error_shape(staff_client.post(URL, body, format="json"), 400, field=field)
    assert not Rollout.objects.exists()


def test_a_name_is_taken_once_and_unknown_rollouts_are_404(staff_client, beta):
    assert staff_client.post(URL, {"name": "once", "flag": "beta_feed"}, format="json").status_code == 201
    assert_error_shape(staff_client.post(URL, {"name": "once", "flag": "beta_feed"}, format="json"), 400, field="name")
    assert_error_shape(staff_client.get(f"{URL}/nope"), 404)
    assert_error_shape(staff_client.post(f"{URL}/nope/actions", {"action": "start"}, format="json"), 404)
    assert_error_shape(staff_client.post(f"{URL}/once/actions", {"action": "explode"}, format="json"), 400)


def test_only_staff_reach_the_rollouts_api(api_client, django_user_model, beta):
    for method, url in [("get", URL), ("post", URL), ("get", f"{URL}/gates"), ("post", f"{URL}/x/actions")]:
        assert getattr(api_client, method)(url, {}, format="json").status_code in (401, 403)
    api_client.force_authenticate(django_user_model.objects.create_user(username="m", password="pw-member-pass"))
    assert_error_shape(api_client.post(URL, {"name": "x", "flag": "beta_feed"}, format="json"), 403)


def test_a_flag_forced_for_everyone_cannot_start_a_rollout(staff_client, beta):
    Flag.objects.filter(name="beta_feed").update(everyone=True)
    staff_client.post(URL, {"name": "forced", "flag": "beta_feed"}, format="json")
    refused = staff_client.post(f"{URL}/forced/actions", {"action": "start"}, format="json")
    error = assert_error_shape(refused, 409, "conflict")
    assert "forced on for everyone" in error["message"]
    assert Rollout.objects.get(name="forced").state == "draft"
