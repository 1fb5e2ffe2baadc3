"""/metrics (ops/prometheus.py): the Prometheus text format, for staff and for a scraper's
bearer token only; ops' families, and the families other apps register."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from ops import prometheus
from ops.models import DeadLetter, InvariantResult
from ops.prometheus import prometheus_collector_register
from ops.services import heartbeat_beat
from runs.queue import runs_queue
from tests.factories import MatchRunFactory
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.OPS_METRICS_TOKEN = TOKEN


@pytest.fixture
def collectors(monkeypatch):
    """Registrations made by the test are dropped after it."""
    monkeypatch.setattr(prometheus, "_COLLECTORS", dict(prometheus._COLLECTORS))


def scrape(client: Client | None = None, **headers: str) -> dict[str, list]:
    """The families by name: each its samples as (name, labels, value)."""
    response = (client or Client()).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}", **headers})
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(response.content.decode())
    }


def test_anonymous_callers_are_refused_in_the_api_error_shape():
    response = Client().get("/metrics")
    assert_error_shape(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused():
    response = Client().get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert_error_shape(response, 401, "authentication_failed")


def test_no_token_is_accepted_when_none_is_configured(settings):
    settings.OPS_METRICS_TOKEN = ""
    response = Client().get("/metrics", headers={"Authorization": "Bearer "})
    assert_error_shape(response, 401, "authentication_failed")


def test_a_member_without_staff_rights_is_refused(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user(username="member", password="pw-for-tests"))
    assert_error_shape(client.get("/metrics"), 403, "permission_denied")


def test_staff_read_the_metrics_with_their_session(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user(username="ops", password="pw", is_staff=True))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "matchplatform_queue_items" in response.content.decode()


def test_only_get_is_answered():
    response = Client().post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert_error_shape(response, 405, "method_not_allowed")


def test_queue_depths_per_queue_and_status_and_open_dead_letters():
    MatchRunFactory.create_batch(3)
    DeadLetter.objects.create(queue=runs_queue.label, item_id=1, reason="attempts")
    DeadLetter.objects.create(queue=runs_queue.label, item_id=2, reason="attempts")
    families = scrape()
    items = {(labels["queue"], labels["status"]): value for _, labels, value in families["matchplatform_queue_items"]}
    queued = {status: n for (queue, status), n in items.items() if queue == runs_queue.label}
    assert queued["queued"] == 3
    assert queued["processing"] == 0
    letters = {labels["queue"]: value for _, labels, value in families["matchplatform_dead_letters_open"]}
    assert letters[runs_queue.label] == 2


def test_each_invariant_state_is_a_gauge_from_0_to_3_with_its_figure():
    InvariantResult.objects.create(name="runs.stuck_runs", app="runs", state="critical", value=4)
    InvariantResult.objects.create(name="runs.error_rate_last_hour", app="runs", state="insufficient_data")
    families = scrape()
    state = {labels["invariant"]: value for _, labels, value in families["matchplatform_invariant_state"]}
    assert state["runs.stuck_runs"] == 3
    assert state["runs.error_rate_last_hour"] == 0
    value = {labels["invariant"]: v for _, labels, v in families["matchplatform_invariant_value"]}
    assert value["runs.stuck_runs"] == 4
    assert "runs.error_rate_last_hour" not in value


def test_workers_alive_are_counted_by_heartbeat():
    assert scrape()["matchplatform_workers_alive"] == [("matchplatform_workers_alive", {}, 0)]
    heartbeat_beat(queues=["celery"])
    assert scrape()["matchplatform_workers_alive"] == [("matchplatform_workers_alive", {}, 1)]


def test_other_apps_add_families_through_the_registration_hook(collectors):
    # Test-only family names: the real apps' collectors (the rollouts' among them) are
    # registered too, and a name exported twice is dropped.
    @prometheus_collector_register
    def hook_test_metrics():
        served = GaugeMetricFamily("matchplatform_hooktest_percent", "Percent served.", labels=["rollout"])
        served.add_metric(["new-ranker"], 25)
        events = CounterMetricFamily("matchplatform_hooktest_events", "Events.", labels=["rollout", "decision"])
        events.add_metric(["new-ranker", "advance"], 3)
        return [served, events]

    families = scrape()
    assert families["matchplatform_hooktest_percent"] == [
        ("matchplatform_hooktest_percent", {"rollout": "new-ranker"}, 25)
    ]
    assert (
        "matchplatform_hooktest_events_total",
        {"rollout": "new-ranker", "decision": "advance"},
        3,
    ) in families["matchplatform_hooktest_events"]
    up = {labels["collector"]: value for _, labels, value in families["matchplatform_metrics_collector_up"]}
    assert up[f"{hook_test_metrics.__module__}.{hook_test_metrics.__qualname__}"] == 1


def test_a_failing_collector_is_reported_and_leaves_the_others_and_a_duplicate_family_is_dropped(collectors):
    def broken():
        raise RuntimeError("table missing")

    def duplicate():
        family = GaugeMetricFamily("matchplatform_workers_alive", "A second family of the same name.")
        family.add_metric([], 99)
        return [family]

    prometheus_collector_register(broken, name="t.broken")
    prometheus_collector_register(duplicate, name="t.duplicate")
    families = scrape()
    up = {labels["collector"]: value for _, labels, value in families["matchplatform_metrics_collector_up"]}
    assert up["t.broken"] == 0
    assert up["t.duplicate"] == 1
    assert up["ops.queues"] == up["ops.invariants"] == up["ops.workers"] == 1
    assert {name for name, value in up.items() if value != 1} == {"t.broken"}, "the apps' own collectors answer"
    assert families["matchplatform_workers_alive"] == [("matchplatform_workers_alive", {}, 0)]


REPO = Path(__file__).resolve().parents[2]

ON_SQLITE = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from ops.tasks import invariants_check
from ops.services import heartbeat_beat
invariants_check.run()
invariants_check.run()
heartbeat_beat(queues=["celery"])
response = Client().get("/metrics", headers={"Authorization": "Bearer " + settings.OPS_METRICS_TOKEN})
names = sorted(f.name for f in text_string_to_metric_families(response.content.decode()))
print(json.dumps({"status": response.status_code, "names": names}))
"""


@pytest.mark.slow
def test_metrics_and_invariant_alerts_work_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
    env.update(
        MATCHPLATFORM_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="matchplatform.settings",
        OPS_METRICS_TOKEN=TOKEN,
        ALLOWED_HOSTS="testserver",
    )
    done = subprocess.run(
        [sys.executable, "-c", ON_SQLITE], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == 200
    assert {
        "matchplatform_queue_items",
        "matchplatform_invariant_state",
        "matchplatform_workers_alive",
        "matchplatform_metrics_collector_up",
    } <= set(out["names"])
