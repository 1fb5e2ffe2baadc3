"""A URL whose host does not resolve is the input's fault: it fails once, is never retried,
stays out of the error rate (counted apart as a refused input), tells an anonymous caller
what is wrong with the URL and nothing about our resolver, and leaves the platform ready
and healthy. The incident: one such submission made /api/health 503 for an hour."""

from __future__ import annotations

import json
import socket

import pytest

import runs.fetch
from ops.models import DeadLetter, QueueHistory
from ops.services import invariants_check_and_store
from runs.models import MatchRun, MatchRunStatus
from runs.services import match_runs_process_batch
from tests.factories import InvestorFactory, StartupFactory

pytestmark = pytest.mark.django_db

SUBMIT = "/api/match/run"


@pytest.fixture
def nxdomain(monkeypatch):
    """The resolver answers "no such name" for *.invalid (DNS crosses the network)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if str(host).endswith(".internal"):  # a name that resolves inside our network
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(runs.fetch.socket, "getaddrinfo", getaddrinfo)


def submit(client, url):
    response = client.post(SUBMIT, data=json.dumps({"url": url}), content_type="application/json")
    assert response.status_code == 202, response.content
    return response.json()["run_id"]


def test_an_unresolvable_host_fails_once_and_is_never_retried(api_client, nxdomain, settings):
    settings.RUNS_MAX_ATTEMPTS = 3
    run_id = submit(api_client, "https://demo.invalid")

    match_runs_process_batch()

    run = MatchRun.objects.get(run_id=run_id)
    assert (run.status, run.attempts, run.error_code) == (MatchRunStatus.ERROR, 1, "host_unresolvable")
    events = list(QueueHistory.objects.filter(item_id=run.pk).values_list("event", flat=True))
    assert events == ["submit", "claim", "dead"]
    # A refused input waits for no operator: its dead letter is "permanent".
    assert DeadLetter.objects.get(item_id=run.pk).reason == "permanent"


def test_the_caller_reads_what_is_wrong_with_the_url_and_staff_read_the_resolver(api_client, staff_client, nxdomain):
    run_id = submit(api_client, "https://demo.invalid")
    match_runs_process_batch()

    body = api_client.get(f"{SUBMIT}/{run_id}").json()
    assert body["status"] == "error"
    assert body["error"] == "The host demo.invalid does not resolve to a public address."
    assert body["error_code"] == "host_unresolvable"
    matches = api_client.get(f"{SUBMIT}/{run_id}/matches").json()["error"]
    assert (matches["code"], matches["message"]) == (
        "run_failed",
        "The run failed: The host demo.invalid does not resolve to a public address.",
    )

    debug = staff_client.get(f"{SUBMIT}/{run_id}/debug").json()
    assert "Name or service not known" in debug["last_error"]
    assert debug["refused_input"] is True
    assert debug["run"]["error"] == body["error"]


def test_a_name_that_resolves_inside_answers_like_one_that_does_not_exist(api_client, staff_client, nxdomain):
    inside = submit(api_client, "https://wiki.internal")
    missing = submit(api_client, "https://wiki.invalid")
    match_runs_process_batch()

    answers = [api_client.get(f"{SUBMIT}/{run_id}").json() for run_id in (inside, missing)]
    assert [(a["error_code"], a["error"].replace("internal", "invalid")) for a in answers] == [
        ("host_unresolvable", "The host wiki.invalid does not resolve to a public address.")
    ] * 2
    assert "10.0.0.5" not in json.dumps(answers[0])
    # Staff see what happened; the address itself only goes to the log.
    debug = staff_client.get(f"{SUBMIT}/{inside}/debug").json()
    assert "resolves to a non-public address" in debug["last_error"]
    assert "10.0.0.5" not in json.dumps(debug)


def test_one_unresolvable_url_leaves_the_platform_ready_and_healthy(api_client, staff_client, nxdomain):
    StartupFactory(canonical_url="https://ok.example")
    InvestorFactory()
    submit(api_client, "https://ok.example")
    submit(api_client, "https://demo.invalid")
    match_runs_process_batch()

    found = {o.name: o for o in invariants_check_and_store()}
    rate = found["runs.error_rate_last_hour"]
    assert rate.state == "insufficient_data"
    assert rate.detail.startswith("n=1 < 20")
    assert "1 refused input(s) left out" in rate.detail
    assert found["runs.refused_inputs_last_hour"].value == 1

    assert api_client.get("/api/health/ready").status_code == 200
    health = api_client.get("/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok", [i for i in health.json()["invariants"] if i["state"] != "ok"]

    (hour,) = staff_client.get("/api/match/health/hourly").json()["hours"]
    assert (hour["successes"], hour["errors"], hour["refused_inputs"], hour["error_rate"]) == (1, 0, 1, 0.0)


def test_twenty_runs_and_refused_inputs_still_judge_only_the_platform(api_client, nxdomain, settings):
    settings.OPS_INVARIANT_MIN_SAMPLE = 2
    StartupFactory(canonical_url="https://ok.example")
    StartupFactory(canonical_url="https://ok2.example")
    InvestorFactory()
    for url in ["https://ok.example", "https://ok2.example", "https://a.invalid", "https://b.invalid"]:
        submit(api_client, url)
    match_runs_process_batch()

    rate = {o.name: o for o in invariants_check_and_store()}["runs.error_rate_last_hour"]
    assert (rate.state, rate.value, rate.sample) == ("ok", 0.0, 2)
