"""Typed config: schema validation on every write (a 400 naming the field), a version per
write, rollback to any version, safe values, and the staff API."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field
from waffle.testutils import override_switch

from flags.config.models import ConfigValue
from flags.config.registry import config_declare
from flags.config.selectors import config_get, config_versions
from flags.config.services import config_rollback, config_set
from flags.names import SAFE_MODE
from matchplatform.exceptions import InvalidInput, NotFound
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.django_db


class RankerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["epsilon_greedy_v1", "greedy_v0"]
    epsilon: float = Field(ge=0, le=1)


RANKER = config_declare(
    "tests.ranker.policy",
    schema=RankerPolicy,
    default=RankerPolicy(version="epsilon_greedy_v1", epsilon=0.08),
    safe=RankerPolicy(version="epsilon_greedy_v1", epsilon=0.0),
    description="A ranker's policy (declared by the tests).",
)


def test_before_any_write_the_default_is_answered_typed():
    value = config_get(RANKER)
    assert isinstance(value, RankerPolicy) and value.epsilon == 0.08
    assert config_get("tests.ranker.policy") == value


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"version": "epsilon_greedy_v1", "epsilon": 1.5}, "value.epsilon"),
        ({"version": "epsilon_greedy_v1", "epsilon": "lots"}, "value.epsilon"),
        ({"version": "nope", "epsilon": 0.1}, "value.version"),
        ({"version": "epsilon_greedy_v1"}, "value.epsilon"),
        ({"version": "epsilon_greedy_v1", "epsilon": 0.1, "extra": 1}, "value.extra"),
    ],
)
def test_a_bad_write_is_refused_naming_the_field_and_stores_nothing(bad, field):
    config_set("tests.ranker.policy", {"version": "greedy_v0", "epsilon": 0.2}, reason="good")
    with pytest.raises(InvalidInput) as refused:
        config_set("tests.ranker.policy", bad, reason="bad")
    assert field in refused.value.fields
    row = ConfigValue.objects.get(name="tests.ranker.policy")
    assert (row.version, row.value["epsilon"]) == (1, 0.2)
    assert config_get(RANKER).epsilon == 0.2


def test_an_undeclared_name_is_not_found():
    with pytest.raises(NotFound):
        config_set("no.such.name", {}, reason="")


def test_every_write_is_a_version_and_rollback_restores_one_as_the_next():
    for epsilon in (0.1, 0.2, 0.3):
        config_set("tests.ranker.policy", {"version": "epsilon_greedy_v1", "epsilon": epsilon}, reason=f"e={epsilon}")
    assert config_get(RANKER).epsilon == 0.3
    versions = config_versions("tests.ranker.policy")
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["reason"] for v in versions] == ["e=0.3", "e=0.2", "e=0.1"]
    config_rollback("tests.ranker.policy", version=1, reason="too greedy")
    assert config_get(RANKER).epsilon == 0.1
    latest = config_versions("tests.ranker.policy")[0]
    assert latest["version"] == 4 and latest["value"]["epsilon"] == 0.1
    assert latest["reason"] == "rollback to v1: too greedy"
    with pytest.raises(NotFound):
        config_rollback("tests.ranker.policy", version=9)


def test_safe_mode_answers_the_safe_value_and_lets_go_after():
    config_set("tests.ranker.policy", {"version": "epsilon_greedy_v1", "epsilon": 0.5}, reason="")
    with override_switch(SAFE_MODE, active=True):
        assert config_get(RANKER).epsilon == 0.0
        assert config_get("runs.fetch").unknown_sites is False
    assert config_get(RANKER).epsilon == 0.5
    assert config_get("runs.fetch").unknown_sites is True


def test_a_stored_value_that_no_longer_fits_its_schema_answers_the_default(caplog):
    ConfigValue.objects.create(name="tests.ranker.policy", value={"version": "gone_v9", "epsilon": 0.3})
    assert config_get(RANKER) == RANKER.default
    assert "no longer fits" in caplog.text


# --- the staff API --------------------------------------------------------------------------


def test_the_staff_api_writes_validates_lists_versions_and_rolls_back(staff_client):
    url = "/api/staff/config/tests.ranker.policy"
    listed = staff_client.get("/api/staff/config").json()
    assert {"runs.fetch", "tests.ranker.policy"} <= {c["name"] for c in listed}
    got = staff_client.get(url).json()
    assert got["version"] is None and got["value"] == got["default"]
    assert got["schema"]["properties"]["epsilon"]["maximum"] == 1

    ok = staff_client.put(url, {"value": {"version": "greedy_v0", "epsilon": 0.2}, "reason": "try"}, format="json")
    assert ok.status_code == 200 and ok.json()["version"] == 1
    bad = staff_client.put(url, {"value": {"version": "greedy_v0", "epsilon": -1}}, format="json")
    error = assert_error_shape(bad, 400, "invalid", field="value.epsilon")
    assert "epsilon" in error["message"]
    assert_error_shape(staff_client.put(url, {"value": "not an object"}, format="json"), 400, "invalid")
    assert_error_shape(staff_client.put(url, {}, format="json"), 400, field="value")
    assert_error_shape(staff_client.put("/api/staff/config/nope", {"value": {}}, format="json"), 404)

    staff_client.put(url, {"value": {"version": "greedy_v0", "epsilon": 0.4}}, format="json")
    versions = staff_client.get(url + "/versions").json()
    assert [v["version"] for v in versions] == [2, 1] and versions[0]["changed_by"] == "ops"
    back = staff_client.post(url + "/rollback", {"version": 1, "reason": "regression"}, format="json")
    assert back.status_code == 200 and back.json()["version"] == 3 and back.json()["value"]["epsilon"] == 0.2
    assert_error_shape(staff_client.post(url + "/rollback", {"version": 7}, format="json"), 404)
    assert_error_shape(staff_client.post(url + "/rollback", {"version": "x"}, format="json"), 400, field="version")


def test_the_staff_api_changes_flags_and_switches_with_history(staff_client):
    from flags.models import Flag

    Flag.objects.create(name="feature_x", everyone=False)
    changed = staff_client.patch("/api/staff/flags/feature_x", {"everyone": None, "percent": 25, "reason": "stage 2"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["percent"] == 25.0 and changed.json()["everyone"] is None
    assert_error_shape(staff_client.patch("/api/staff/flags/feature_x", {"percent": 101}), 400, field="percent")
    assert_error_shape(staff_client.patch("/api/staff/flags/nope", {"percent": 5}), 404)
    history = staff_client.get("/api/staff/flags/feature_x/history").json()
    assert history[0]["reason"] == "stage 2" and history[0]["changed_by"] == "ops"
    assert history[0]["values"]["percent"] == 25.0

    on = staff_client.put(f"/api/staff/switches/{SAFE_MODE}", {"active": True, "reason": "incident"})
    assert on.status_code == 200 and on.json()["active"] is True
    from flags.services import safe_mode_active

    assert safe_mode_active() is True
    assert_error_shape(staff_client.put(f"/api/staff/switches/{SAFE_MODE}", {"active": "maybe"}), 400, field="active")


def test_members_and_anonymous_clients_cannot_reach_the_staff_api(api_client, django_user_model):
    for method, url in [
        ("get", "/api/staff/flags"),
        ("patch", "/api/staff/flags/x"),
        ("put", "/api/staff/switches/x"),
        ("get", "/api/staff/config"),
        ("put", "/api/staff/config/runs.fetch"),
        ("post", "/api/staff/config/runs.fetch/rollback"),
    ]:
        response = getattr(api_client, method)(url, {}, format="json")
        assert response.status_code in (401, 403), (url, response.status_code)
    member = django_user_model.objects.create_user(username="member", password="pw-member-pass")
    api_client.force_authenticate(member)
    assert_error_shape(api_client.get("/api/staff/config"), 403)


@pytest.mark.django_db(transaction=True)
def test_two_first_writes_at_once_both_land_as_versions_1_and_2():
    import threading

    from django.db import connections

    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def write(epsilon: float) -> None:
        try:
            barrier.wait(5)
            config_set("tests.ranker.policy", {"version": "greedy_v0", "epsilon": epsilon}, reason=f"e={epsilon}")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(e,)) for e in (0.1, 0.2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert sorted(v["version"] for v in config_versions("tests.ranker.policy")) == [1, 2]
