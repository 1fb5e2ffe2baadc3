"""The runs REST API: submission, status, matches, staff views, and every bad input."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from ops.models import QueueHistory
from runs.models import MatchRun, MatchRunStatus
from runs.services import match_runs_process_batch
from tests.factories import InvestorFactory, StartupFactory
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.django_db

SUBMIT = "/api/match/run"


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(SUBMIT, data=data, content_type=content_type)


def test_submitting_a_url_creates_a_queued_run(api_client):
    response = post(api_client, {"url": "https://www.Acme.example/?utm_source=news"})
    assert response.status_code == 202
    body = response.json()
    assert body["created"] is True
    assert body["status"] == "queued"
    assert body["canonical_url"] == "https://acme.example"
    run = MatchRun.objects.get(run_id=body["run_id"])
    assert run.submitted_url == "https://www.Acme.example/?utm_source=news"
    assert QueueHistory.objects.filter(item_id=run.pk, event="submit").exists()


def test_submitting_another_spelling_while_a_run_is_active_returns_that_run(api_client):
    first = post(api_client, {"url": "https://acme.example"}).json()
    again = post(api_client, {"url": "HTTPS://ACME.EXAMPLE:443/#pricing"})
    assert again.status_code == 200
    assert again.json() == {**first, "created": False}
    assert MatchRun.objects.count() == 1


def test_a_new_run_can_start_once_the_previous_one_finished(api_client):
    StartupFactory(canonical_url="https://acme.example")
    InvestorFactory.create_batch(3)
    first = post(api_client, {"url": "https://acme.example"}).json()
    match_runs_process_batch()
    second = post(api_client, {"url": "https://acme.example"})
    assert second.status_code == 202
    assert second.json()["run_id"] != first["run_id"]


def test_a_processed_run_reports_its_status_and_ranked_matches(api_client):
    StartupFactory(canonical_url="https://acme.example", sectors=["ai"], stage="seed", country="US")
    InvestorFactory(name="Perfect", sectors=["ai"], stages=["seed"], countries=["US"], activity=0.9)
    InvestorFactory(name="Poor", sectors=["biotech"], stages=["growth"], countries=["JP"], activity=0.1)
    run_id = post(api_client, {"url": "https://acme.example"}).json()["run_id"]

    assert api_client.get(f"{SUBMIT}/{run_id}").json()["status"] == "queued"
    assert_error_shape(api_client.get(f"{SUBMIT}/{run_id}/matches"), 409, "run_not_ready")
    match_runs_process_batch()

    status = api_client.get(f"{SUBMIT}/{run_id}").json()
    assert status["status"] == "ready"
    assert status["match_count"] == 2
    assert status["attempts"] == 1
    assert status["duration_ms"] is not None and status["duration_ms"] >= 0
    assert status["error"] is None
    matches = api_client.get(f"{SUBMIT}/{run_id}/matches").json()["matches"]
    assert [m["investor"]["name"] for m in matches] == ["Perfect", "Poor"]
    assert [m["rank"] for m in matches] == [1, 2]
    assert matches[0]["score"] > matches[1]["score"]
    assert any("ai" in reason for reason in matches[0]["reasons"])


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ("{not json", "application/json", "malformed"),
        ("", "application/json", "required"),
        ("[]", "application/json", "invalid"),
        ('"https://acme.example"', "application/json", "invalid"),
        ("{}", "application/json", "required"),
        ('{"url": null}', "application/json", "invalid_type"),
        ('{"url": 42}', "application/json", "invalid_type"),
        ('{"url": ["https://acme.example"]}', "application/json", "invalid_type"),
        ('{"url": {}}', "application/json", "invalid_type"),
        ('{"url": true}', "application/json", "invalid_type"),
        ('{"url": 1.5}', "application/json", "invalid_type"),
        ('{"url": ""}', "application/json", "required"),
        ('{"url": "ftp://acme.example/file"}', "application/json", "invalid_scheme"),
        ('{"url": "javascript:alert(1)"}', "application/json", "invalid_scheme"),
        ('{"url": "acme.example"}', "application/json", "invalid_scheme"),
        ('{"url": "https://"}', "application/json", "missing_host"),
        ('{"url": "https://user:secret@acme.example/"}', "application/json", "credentials_not_allowed"),
        ('{"url": "http://127.0.0.1/admin"}', "application/json", "forbidden_host"),
        ('{"url": "http://10.1.2.3/"}', "application/json", "forbidden_host"),
        ('{"url": "http://192.168.0.1/"}', "application/json", "forbidden_host"),
        ('{"url": "http://169.254.169.254/latest/meta-data"}', "application/json", "forbidden_host"),
        ('{"url": "http://224.0.0.1/"}', "application/json", "forbidden_host"),
        ('{"url": "http://240.0.0.1/"}', "application/json", "forbidden_host"),
        ('{"url": "http://[::1]/"}', "application/json", "forbidden_host"),
        ('{"url": "http://[fe80::1]/"}', "application/json", "forbidden_host"),
        ('{"url": "http://2130706433/"}', "application/json", "forbidden_host"),
        ('{"url": "http://localhost:8000/"}', "application/json", "forbidden_host"),
    ],
)
def test_bad_input_gets_a_400_in_the_error_shape_and_creates_nothing(api_client, body, content_type, code):
    response = api_client.post(SUBMIT, data=body, content_type=content_type)
    assert_error_shape(response, 400, code)
    assert MatchRun.objects.count() == 0


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)
def test_a_body_that_does_not_say_it_is_json_is_a_415(api_client, content_type):
    response = api_client.post(SUBMIT, data='{"url": "https://acme.example"}', content_type=content_type)
    assert_error_shape(response, 415, "unsupported_media_type")
    assert MatchRun.objects.count() == 0


def test_a_url_over_2048_characters_is_refused(api_client):
    url = "https://acme.example/" + "a" * 2030
    assert len(url) > 2048
    error = assert_error_shape(post(api_client, {"url": url}), 400, "too_long")
    assert error["fields"] == {"url": [error["message"]]}


def test_a_huge_body_is_a_clear_413_not_a_500(api_client):
    response = post(api_client, {"url": "https://acme.example", "pad": "x" * 3_000_000})
    assert_error_shape(response, 413, "too_large")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"url": "https://a.example/\\ud800"}', "malformed"),
        ('{"url": "https://a.example/#\\udfff"}', "malformed"),
        ("[" * 30_000, "malformed"),
        ('{"url": "https://a.example/' + "\u00e9" * 1500 + '"}', "too_long"),
    ],
)
def test_hostile_bodies_get_a_400_never_a_500(api_client, body, code):
    assert_error_shape(api_client.post(SUBMIT, data=body.encode(), content_type="application/json"), 400, code)
    assert MatchRun.objects.count() == 0


def test_the_throttle_ignores_a_client_supplied_forwarded_for(api_client, settings):
    settings.RUNS_SUBMIT_RATE = "2/min"
    codes = [
        api_client.post(
            SUBMIT,
            data=json.dumps({"url": f"https://f{i}.example"}),
            content_type="application/json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(4)
    ]
    assert codes == [202, 202, 429, 429]


def test_an_unknown_or_malformed_run_id_is_a_404(api_client):
    assert_error_shape(api_client.get(f"{SUBMIT}/00000000-0000-0000-0000-000000000000"), 404, "run_not_found")
    assert_error_shape(api_client.get(f"{SUBMIT}/not-a-uuid"), 404, "run_not_found")
    assert_error_shape(api_client.get(f"{SUBMIT}/not-a-uuid/matches"), 404, "run_not_found")


def test_submissions_are_throttled_per_client(api_client, settings):
    settings.RUNS_SUBMIT_RATE = "3/min"
    codes = [post(api_client, {"url": f"https://t{i}.example"}).status_code for i in range(5)]
    assert codes[:3] == [202, 202, 202]
    assert codes[3:] == [429, 429]
    assert_error_shape(post(api_client, {"url": "https://t9.example"}), 429, "throttled")


def test_the_debug_timeline_is_for_staff_only(api_client, staff_client):
    StartupFactory(canonical_url="https://acme.example")
    InvestorFactory()
    run_id = post(api_client, {"url": "https://acme.example"}).json()["run_id"]
    match_runs_process_batch()

    # 401 or 403 depending on which authentication scheme answers first; refused either way.
    assert api_client.get(f"{SUBMIT}/{run_id}/debug").status_code in (401, 403)
    body = staff_client.get(f"{SUBMIT}/{run_id}/debug").json()
    assert [step["event"] for step in body["timeline"]] == ["submit", "claim", "ack"]
    assert body["attempts"] == 1
    assert body["rescues"] == 0
    assert body["lease"]["owner"]
    assert body["durations"]["total_ms"] is not None


def test_the_hourly_health_is_for_staff_only_and_counts_outcomes(api_client, staff_client):
    StartupFactory(canonical_url="https://ok.example")
    InvestorFactory()
    post(api_client, {"url": "https://ok.example"})
    match_runs_process_batch()
    with override_settings(RUNS_MAX_ATTEMPTS=1, RUNS_FETCH_TIMEOUT_SECONDS=1):
        post(api_client, {"url": "https://unknown-startup.invalid"})
        match_runs_process_batch()

    assert api_client.get("/api/match/health/hourly").status_code in (401, 403)
    (hour,) = staff_client.get("/api/match/health/hourly").json()["hours"]
    assert hour["total"] == 2
    assert hour["successes"] == 1
    # A host that does not resolve is the input's fault: counted apart, not as an error.
    assert hour["errors"] == 0
    assert hour["refused_inputs"] == 1
    assert hour["error_rate"] == 0.0
    assert hour["avg_matches"] == 1.0
    assert hour["p95_duration_ms"] is not None
    assert MatchRun.objects.get(canonical_url="https://unknown-startup.invalid").status == MatchRunStatus.ERROR


def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/match/run" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_the_json_depth_check_ignores_brackets_inside_strings():
    from matchplatform.parsers import json_depth_exceeds

    assert not json_depth_exceeds(
        body=b'{"url": "https://a.example/[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', limit=2
    )
    assert not json_depth_exceeds(body=b'{"a": "\\"[[[[[", "b": [1, [2]]}', limit=3)
    assert json_depth_exceeds(body=b'{"a": [[[1]]]}', limit=3)


def test_a_platform_error_counts_in_the_hourly_error_rate(api_client, staff_client, monkeypatch):
    import runs.services

    def broken(**kwargs):
        raise RuntimeError("engine exploded")

    StartupFactory(canonical_url="https://ok.example")
    InvestorFactory()
    post(api_client, {"url": "https://ok.example"})
    match_runs_process_batch()
    StartupFactory(canonical_url="https://boom.example")
    monkeypatch.setattr(runs.services, "matches_rank", broken)
    with override_settings(RUNS_MAX_ATTEMPTS=1):
        run_id = post(api_client, {"url": "https://boom.example"}).json()["run_id"]
        match_runs_process_batch()

    (hour,) = staff_client.get("/api/match/health/hourly").json()["hours"]
    assert (hour["successes"], hour["errors"], hour["refused_inputs"], hour["error_rate"]) == (1, 1, 0, 0.5)
    # Anonymous callers learn it was our failure, not the exception.
    body = api_client.get(f"{SUBMIT}/{run_id}").json()
    assert body["error_code"] == "server_error"
    assert "exploded" not in body["error"]
    assert "exploded" in staff_client.get(f"{SUBMIT}/{run_id}/debug").json()["last_error"]
    conflict = assert_error_shape(api_client.get(f"{SUBMIT}/{run_id}/matches"), 409, "run_failed")
    assert "exploded" not in conflict["message"]


def _schema_operations():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return {
        ("/api/match/run", "post"): paths["/api/match/run"]["post"],
        ("/api/match/run/{run_id}", "get"): paths["/api/match/run/{run_id}"]["get"],
        ("/api/match/run/{run_id}/matches", "get"): paths["/api/match/run/{run_id}/matches"]["get"],
        ("/api/match/run/{run_id}/debug", "get"): paths["/api/match/run/{run_id}/debug"]["get"],
        ("/api/match/health/hourly", "get"): paths["/api/match/health/hourly"]["get"],
    }


def test_the_schema_declares_every_status_each_runs_operation_answers():
    declared = {key: set(op["responses"]) for key, op in _schema_operations().items()}
    assert declared == {
        ("/api/match/run", "post"): {"200", "202", "400", "401", "403", "409", "413", "415", "429", "503"},
        ("/api/match/run/{run_id}", "get"): {"200", "401", "404", "429", "503"},
        ("/api/match/run/{run_id}/matches", "get"): {"200", "401", "404", "409", "429", "503"},
        ("/api/match/run/{run_id}/debug", "get"): {"200", "401", "403", "404", "429", "503"},
        ("/api/match/health/hourly", "get"): {"200", "401", "403", "429", "503"},
    }
    for op in _schema_operations().values():
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_schema_says_the_body_is_json_with_a_string_url_and_the_run_id_a_uuid():
    operations = _schema_operations()
    body = operations[("/api/match/run", "post")]["requestBody"]
    assert set(body["content"]) == {"application/json"}
    assert body["required"] is True
    for key in [("/api/match/run/{run_id}", "get"), ("/api/match/run/{run_id}/matches", "get")]:
        (parameter,) = operations[key]["parameters"]
        assert (parameter["name"], parameter["schema"]) == ("run_id", {"type": "string", "format": "uuid"})


def test_the_url_schema_agrees_with_what_the_server_accepts(api_client):
    import re

    from drf_spectacular.generators import SchemaGenerator

    url = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]["SubmitInput"]
    assert url["required"] == ["url"]
    field = url["properties"]["url"]
    assert (field["type"], field["minLength"], field["maxLength"]) == ("string", 1, 2048)
    pattern = re.compile(field["pattern"])
    # Whatever the server accepts, the schema allows...
    for accepted in ["https://acme.example", "  HTTP://Acme.example/x?y=1  ", "https://a.example:8443/p"]:
        assert pattern.search(accepted), accepted
        assert post(api_client, {"url": accepted}).status_code in (200, 202), accepted
    # ... and what the schema forbids, the server refuses.
    for refused in ["", "acme.example", "ftp://acme.example", "https://", "https://a b.example"]:
        assert not pattern.search(refused), refused
        assert post(api_client, {"url": refused}).status_code == 400, refused


def test_submitting_and_reading_a_run_need_no_account_but_staff_views_do(api_client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    StartupFactory(canonical_url="https://acme.example")
    InvestorFactory()
    run_id = post(api_client, {"url": "https://acme.example"}).json()["run_id"]
    match_runs_process_batch()
    assert api_client.get(f"{SUBMIT}/{run_id}").status_code == 200
    assert api_client.get(f"{SUBMIT}/{run_id}/matches").status_code == 200
    assert api_client.get(f"{SUBMIT}/{run_id}/debug").status_code in (401, 403)
    assert api_client.get("/api/match/health/hourly").status_code in (401, 403)
