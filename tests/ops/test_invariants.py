"""Invariants: evaluation, the built-in checks, doctor's table and the health endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models.functions import Now

from ops.invariants import Invariant, Reading, invariant_evaluate, invariants_all
from ops.models import InvariantResult
from ops.services import invariants_check_and_store
from runs.models import MatchRun, MatchRunStatus
from runs.queue import runs_queue
from tests.factories import MatchRunFactory

pytestmark = pytest.mark.django_db


def figure(value, **bounds):
    return Invariant(name="t.figure", app="t", description="d", kind="figure", check=lambda: value, **bounds)


@pytest.mark.parametrize(
    ("value", "state"),
    [(1, "ok"), (5, "ok"), (6, "warn"), (20, "warn"), (21, "critical"), (-1, "critical")],
)
def test_a_figure_is_judged_against_its_warn_and_critical_bounds(value, state):
    outcome = invariant_evaluate(figure(value, warn_above=5, critical_above=20, critical_below=0))
    assert outcome.state == state
    assert outcome.value == value


@pytest.mark.parametrize(
    ("sample", "state", "detail"),
    [(0, "insufficient_data", "n=0 < 20"), (19, "insufficient_data", "n=19 < 20"), (20, "critical", "n=20")],
)
def test_a_rate_below_its_minimum_sample_reads_not_enough_data_and_names_its_sample(sample, state, detail):
    rate = Invariant(
        name="t.rate",
        app="t",
        description="d",
        kind="figure",
        check=lambda: Reading(value=0.5, sample=sample),
        critical_above=0.1,
        min_sample=20,
    )
    outcome = invariant_evaluate(rate)
    assert outcome.state == state
    assert outcome.sample == sample
    assert outcome.detail.startswith(detail)


def test_the_minimum_sample_comes_from_the_setting(settings):
    settings.OPS_INVARIANT_MIN_SAMPLE = 3
    outcome = next(o for o in map(invariant_evaluate, invariants_all()) if o.name == "runs.error_rate_last_hour")
    assert outcome.detail.startswith("n=0 < 3")


def test_a_rate_that_does_not_name_its_sample_is_a_broken_check():
    rate = Invariant(name="t.rate", app="t", description="d", kind="figure", check=lambda: 0.5, min_sample=20)
    outcome = invariant_evaluate(rate)
    assert outcome.state == "error"
    assert "Reading" in outcome.detail


def test_a_rows_check_fails_at_its_level_and_names_the_rows():
    rows = Invariant(name="t.rows", app="t", description="d", kind="rows", check=lambda: ["a", "b"], level="warn")
    outcome = invariant_evaluate(rows)
    assert (outcome.state, outcome.value, outcome.detail) == ("warn", 2.0, "a; b")
    empty = Invariant(name="t.rows", app="t", description="d", kind="rows", check=list)
    assert invariant_evaluate(empty).state == "ok"


def test_a_check_that_crashes_is_reported_not_raised():
    def broken():
        raise ValueError("bad query")

    outcome = invariant_evaluate(Invariant(name="t.x", app="t", description="d", kind="figure", check=broken))
    assert outcome.state == "error"
    assert "bad query" in outcome.detail


def test_every_app_registers_its_checks():
    names = {inv.name for inv in invariants_all()}
    assert {
        "ops.expired_leases_released",
        "ops.dead_letters_open",
        "ops.workers_stale",
        "runs.one_active_run_per_url",
        "runs.error_rate_last_hour",
        "runs.avg_duration_seconds_last_hour",
        "runs.stuck_runs",
        "runs.runs_finishing",
        "runs.refused_inputs_last_hour",
        "ops.database_connections",
    } <= names


def test_every_rate_and_average_invariant_has_a_minimum_sample():
    rates = {inv.name for inv in invariants_all() if inv.min_sample is not None}
    assert {"runs.error_rate_last_hour", "runs.avg_duration_seconds_last_hour"} <= rates


def finished(n, status, *, duration_ms=1000, error_code=""):
    MatchRun.objects.bulk_create(
        [
            MatchRun(
                canonical_url=f"https://{status}-{error_code}-{i}-{duration_ms}.example",
                submitted_url="x",
                status=status,
                duration_ms=duration_ms,
                error_code=error_code,
            )
            for i in range(n)
        ]
    )
    MatchRun.objects.filter(finished_at__isnull=True, status=status).update(finished_at=Now())


def states():
    return {o.name: o.state for o in invariants_check_and_store()}


def outcomes():
    return {o.name: o for o in invariants_check_and_store()}


@pytest.mark.parametrize(("errors", "state"), [(0, "ok"), (1, "ok"), (6, "warn"), (11, "critical")])
def test_the_error_rate_alert_warns_above_5_and_is_critical_above_10_percent(errors, state):
    finished(100 - errors, MatchRunStatus.READY)
    finished(errors, MatchRunStatus.ERROR)
    assert states()["runs.error_rate_last_hour"] == state


def test_one_failed_run_among_a_few_is_not_enough_data_for_an_error_rate():
    finished(4, MatchRunStatus.READY)
    finished(1, MatchRunStatus.ERROR)
    outcome = outcomes()["runs.error_rate_last_hour"]
    assert outcome.state == "insufficient_data"
    assert outcome.detail.startswith("n=5 < 20")


def test_refused_inputs_stay_out_of_the_error_rate_and_are_counted_apart():
    finished(20, MatchRunStatus.READY)
    finished(3, MatchRunStatus.ERROR, error_code="host_unresolvable")
    finished(2, MatchRunStatus.ERROR, error_code="forbidden_host")
    found = outcomes()
    rate = found["runs.error_rate_last_hour"]
    assert (rate.state, rate.value, rate.sample) == ("ok", 0.0, 20)
    assert "5 refused input(s) left out" in rate.detail
    assert (found["runs.refused_inputs_last_hour"].state, found["runs.refused_inputs_last_hour"].value) == ("ok", 5)


def test_platform_errors_still_count_whatever_the_refused_inputs():
    finished(17, MatchRunStatus.READY)
    finished(3, MatchRunStatus.ERROR, error_code="unavailable")
    finished(30, MatchRunStatus.ERROR, error_code="host_unresolvable")
    rate = outcomes()["runs.error_rate_last_hour"]
    assert (rate.state, rate.value, rate.sample) == ("critical", 0.15, 20)


@pytest.mark.parametrize(("ms", "state"), [(2_000, "ok"), (12_000, "warn"), (31_000, "critical")])
def test_the_duration_alert_warns_above_10_s_and_is_critical_above_30_s(ms, state):
    finished(20, MatchRunStatus.READY, duration_ms=ms)
    assert states()["runs.avg_duration_seconds_last_hour"] == state


def test_an_average_over_too_few_runs_is_not_enough_data():
    finished(19, MatchRunStatus.READY, duration_ms=60_000)
    outcome = outcomes()["runs.avg_duration_seconds_last_hour"]
    assert (outcome.state, outcome.value, outcome.sample) == ("insufficient_data", 60.0, 19)
    assert outcome.detail.startswith("n=19 < 20")


def test_database_connections_are_measured_against_max_connections():
    outcome = outcomes()["ops.database_connections"]
    used, maximum = (int(word) for word in outcome.detail.split()[0:3:2])
    assert 1 <= used <= maximum
    assert outcome.detail == f"{used} of {maximum} connections in use"
    assert 0 < outcome.value <= 100


@pytest.mark.parametrize(("used", "state"), [(80, "ok"), (81, "warn"), (90, "warn"), (91, "critical")])
def test_database_connections_warn_above_80_and_are_critical_above_90_percent(monkeypatch, used, state):
    import ops.invariants_builtin

    monkeypatch.setattr(ops.invariants_builtin, "database_connections", lambda: (used, 100))
    assert states()["ops.database_connections"] == state


@pytest.mark.parametrize(("stuck", "state"), [(5, "ok"), (6, "warn"), (21, "critical")])
def test_the_stuck_runs_alert_counts_runs_active_for_over_five_minutes(stuck, state):
    for _ in range(stuck):
        MatchRunFactory()
    MatchRun.objects.update(created_at=Now() - timedelta(minutes=6))
    MatchRunFactory()  # a fresh one is not stuck
    assert states()["runs.stuck_runs"] == state


def test_submissions_with_no_run_finishing_in_the_last_hour_is_critical():
    MatchRunFactory()
    assert states()["runs.runs_finishing"] == "ok"  # just submitted: give it a minute
    MatchRun.objects.update(created_at=Now() - timedelta(minutes=10))
    assert states()["runs.runs_finishing"] == "critical"
    finished(1, MatchRunStatus.READY)
    assert states()["runs.runs_finishing"] == "ok"


def test_a_lease_nobody_released_is_critical():
    MatchRunFactory()
    runs_queue.claim(owner="w", limit=1, ttl=30)
    assert states()["ops.expired_leases_released"] == "ok"
    MatchRun.objects.update(lease_expires_at=Now() - timedelta(minutes=5))
    assert states()["ops.expired_leases_released"] == "critical"


def test_results_are_stored_for_every_check():
    invariants_check_and_store()
    assert set(InvariantResult.objects.values_list("name", flat=True)) == {inv.name for inv in invariants_all()}


def test_doctor_prints_every_invariant_with_its_state(capsys):
    call_command("doctor")
    out = capsys.readouterr().out
    for inv in invariants_all():
        line = next(line for line in out.splitlines() if line.startswith(inv.name + " "))
        assert any(state in line for state in ("OK", "NOT ENOUGH DATA", "WARN", "CRITICAL", "ERROR"))
    assert "NOT ENOUGH DATA" in next(line for line in out.splitlines() if line.startswith("runs.error_rate_last_hour"))
    assert "n=0 < 20" in out
    assert "connections in use" in out
    assert "status:   ok" in out
    assert "database: postgresql ok" in out
    assert "queue runs.matchrun: queued=0, processing=0, error=0" in out


def test_doctor_exits_1_on_a_critical_invariant(capsys):
    MatchRunFactory()
    runs_queue.claim(owner="w", limit=1, ttl=30)
    MatchRun.objects.update(lease_expires_at=Now() - timedelta(minutes=5))
    with pytest.raises(SystemExit) as exit_info:
        call_command("doctor")
    assert exit_info.value.code == 1
    assert "ops.expired_leases_released" in capsys.readouterr().err


def test_health_is_200_with_database_broker_queues_and_invariants(client):
    MatchRunFactory()
    response = client.get("/api/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["queues"]["runs.matchrun"]["queued"] == 1
    assert {i["name"] for i in body["invariants"]} == {inv.name for inv in invariants_all()}
    assert body["safe_mode"] is False
    rate = next(i for i in body["invariants"] if i["name"] == "runs.error_rate_last_hour")
    assert (rate["state"], rate["sample"]) == ("insufficient_data", 0)


def test_health_stays_200_and_says_critical_when_an_invariant_is_critical(client):
    MatchRunFactory()
    runs_queue.claim(owner="w", limit=1, ttl=30)
    MatchRun.objects.update(lease_expires_at=Now() - timedelta(minutes=5))
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "critical"
    assert client.get("/api/health/ready").status_code == 200


def test_health_says_critical_when_the_broker_is_down_and_ready_is_503(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "critical"
    assert body["broker"]["ok"] is False
    assert "error" not in body["broker"]  # how the broker failed is for staff

    ready = client.get("/api/health/ready")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "unavailable"
    assert set(ready.json()["error"]["fields"]) == {"broker"}


def test_staff_see_why_the_broker_is_down(staff_client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert "Error" in staff_client.get("/api/health").json()["broker"]["error"]


def test_health_and_ready_are_503_in_the_error_shape_when_the_database_is_down(client, monkeypatch):
    import ops.health

    down = {"ok": False, "vendor": "postgresql", "error": "OperationalError: connection refused"}
    monkeypatch.setattr(ops.health, "database_ping", lambda: down)
    for path in ("/api/health", "/api/health/ready"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert "connection refused" not in response.content.decode()


def test_ready_is_200_when_the_database_and_broker_answer(client):
    response = client.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": {"ok": True}, "broker": {"ok": True}}


def test_live_answers_without_asking_the_database(client, django_assert_max_num_queries, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # and without the broker
    with django_assert_max_num_queries(0):
        response = client.get("/api/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_health_endpoints_are_public_and_in_the_schema(api_client, django_user_model):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in ("/api/health", "/api/health/live", "/api/health/ready"):
        responses = schema["paths"][path]["get"]["responses"]
        assert "200" in responses
        assert api_client.get(path).status_code in (200, 503)
    assert set(schema["paths"]["/api/health/ready"]["get"]["responses"]) == {"200", "503"}
    assert "#/components/schemas/Error" in str(schema["paths"]["/api/health"]["get"]["responses"]["503"])
