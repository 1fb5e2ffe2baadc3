"""Invariants: evaluation, the built-in checks, doctor's table and the health endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models.functions import Now

from ops.invariants import Invariant, invariant_evaluate, invariants_all
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
    } <= names


def finished(n, status, *, duration_ms=1000):
    MatchRun.objects.bulk_create(
        [
            MatchRun(
                canonical_url=f"https://{status}-{i}-{duration_ms}.example",
                submitted_url="x",
                status=status,
                duration_ms=duration_ms,
            )
            for i in range(n)
        ]
    )
    MatchRun.objects.filter(finished_at__isnull=True, status=status).update(finished_at=Now())


def states():
    return {o.name: o.state for o in invariants_check_and_store()}


@pytest.mark.parametrize(("errors", "state"), [(0, "ok"), (1, "ok"), (6, "warn"), (11, "critical")])
def test_the_error_rate_alert_warns_above_5_and_is_critical_above_10_percent(errors, state):
    finished(100 - errors, MatchRunStatus.READY)
    finished(errors, MatchRunStatus.ERROR)
    assert states()["runs.error_rate_last_hour"] == state


@pytest.mark.parametrize(("ms", "state"), [(2_000, "ok"), (12_000, "warn"), (31_000, "critical")])
def test_the_duration_alert_warns_above_10_s_and_is_critical_above_30_s(ms, state):
    finished(4, MatchRunStatus.READY, duration_ms=ms)
    assert states()["runs.avg_duration_seconds_last_hour"] == state


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
        assert any(state in line for state in ("OK", "WARN", "CRITICAL", "ERROR"))
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


def test_health_is_503_when_an_invariant_is_critical(client):
    MatchRunFactory()
    runs_queue.claim(owner="w", limit=1, ttl=30)
    MatchRun.objects.update(lease_expires_at=Now() - timedelta(minutes=5))
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"


def test_health_is_503_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
