"""The API keeps its own schema's promises: schemathesis against a live server, every check.

Three callers (anonymous, a member with a token, staff with a token), a fixed seed, and every
check schemathesis has (server errors, undocumented status codes, responses that break the
schema, schema-valid requests refused and schema-invalid ones accepted, ignored auth ...).
Any failure fails the test with schemathesis's own report, which names the request to replay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from flags.models import Flag
from flags.rollouts.services import rollout_create
from proposals.models import Conversation, FeedItem
from proposals.voting.services import proposal_open_for_voter
from tests.factories import MatchRunFactory
from tests.support.servers import child_redis_url, gunicorn_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEED = 20261207
# Cases per operation and phase; the three callers together run well over 1,000 cases.
EXAMPLES = int(os.environ.get("TEST_SCHEMATHESIS_EXAMPLES", "5"))
MIN_CASES = 1_000
ST = Path(sys.executable).parent / "st"

# Revoking the caller's own token would sign the rest of its run out.
TOKEN_REVOKE_OPERATION = "auth_token_destroy"

CONFIG = """
[parameters]
"path.match_id" = "{match_id}"
"path.conversation_id" = "{conversation_id}"
"path.proposal_id" = "{proposal_id}"
"path.run_id" = "{run_id}"
"path.flag_name" = "{flag_name}"
"path.switch_name" = "fuzz.switch"
"path.config_name" = "runs.fetch"
"path.rollout_name" = "{rollout_name}"
"path.queue_name" = "discovery"

[[operations]]
include-name = "PUT /api/staff/config/{{config_name}}"
# Each config name has its own schema (a pydantic model in code, served by GET on the name):
# a JSON value that does not fit it is a documented 400 naming the field.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "429"]

[[operations]]
include-name = "POST /api/staff/rollouts"
# Stages must increase, gates must name a registered metric with its operator, a name is taken
# once and the flag must exist: none of which a schema can state, so each is a documented 400.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "429"]

[[operations]]
include-name = "GET /api/matches/"
# The cursor is opaque: the schema allows any string, the feed only the ones it gave out.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-name = "POST /api/auth/siwe"
# The message follows EIP-4361's grammar (address, nonce, times, signature), which no JSON
# schema can state: a well-typed message that breaks it is a documented 400.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "429"]

[[operations]]
include-name = "POST /api/match/run"
# Whether a URL's host is private, reserved or resolvable is not something a schema can say: such
# a URL is a documented 400 (a refused input).
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "429"]
"""


def st_run(*, url: str, config: Path, report: Path, headers: list[str], extra: list[str]) -> dict:
    command = [
        str(ST),
        "--config-file",
        str(config),
        "run",
        f"{url}/api/schema/",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--no-shrink",
        # One worker: with two, hypothesis on Python 3.11 can crash inside its own AST handling.
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *[arg for header in headers for arg in ("-H", header)],
        *extra,
    ]
    done = subprocess.run(command, cwd=config.parent, capture_output=True, text=True, timeout=300, check=False)
    result = json.loads(report.read_text()) if report.exists() else {}
    result["output"] = done.stdout[-12_000:] + done.stderr[-3_000:]
    result["returncode"] = done.returncode
    return result


def test_every_operation_keeps_its_schema_for_anonymous_callers_members_and_staff(tmp_path):
    call_command("seed_members", "--members", "24", "--password", "pw-fuzz-members", "--no-progress")
    call_command("seed_demo", "--investors", "300", "--startups", "3", "--no-progress")
    member = User.objects.get(username="demo")
    # Real objects the member may act on, so cases reach validation rather than a 404.
    match = FeedItem.objects.filter(member=member).select_related("match").first().match
    proposal = proposal_open_for_voter(user=member)
    assert proposal is not None
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(
            match_id=match.public_id,
            conversation_id=Conversation.objects.get(match=match).public_id,
            proposal_id=proposal.public_id,
            run_id=MatchRunFactory().run_id,
            flag_name=Flag.objects.create(name="fuzz_flag", percent=5).name,
            rollout_name=rollout_create(name="fuzz-rollout", flag="fuzz_flag").name,
        )
    )
    staff = User.objects.create_user(username="fuzz-staff", password="pw-fuzz-staff", is_staff=True)
    tokens = {who: Token.objects.create(user=user).key for who, user in (("member", member), ("staff", staff))}
    env = {
        "DEBUG": "false",
        "CELERY_BROKER_URL": child_redis_url(),
        "CACHE_URL": child_redis_url(),
        # The fuzzer is one client sending thousands of requests: throttles and lockouts
        # would answer most of them 429 and test nothing else.
        "RUNS_SUBMIT_RATE": "1000000/min",
        "AUTH_RATE": "1000000/min",
        "DISCOVERY_RATE_SUGGEST": "1000000/min",
        "DISCOVERY_RATE_SIGNAL": "1000000/min",
        "DISCOVERY_RATE_INTERESTS": "1000000/min",
        "AUTH_FAILURE_LIMIT": "1000000",
    }
    revoke = ["--exclude-operation-id", TOKEN_REVOKE_OPERATION]
    runs = {
        "anonymous": ([], []),
        "member": ([f"Authorization: Token {tokens['member']}"], revoke),
        "staff": ([f"Authorization: Token {tokens['staff']}"], revoke),
    }
    with gunicorn_server(env=env, workers=2, threads=4) as url:
        results = {
            who: st_run(url=url, config=config, report=tmp_path / f"{who}.json", headers=headers, extra=extra)
            for who, (headers, extra) in runs.items()
        }
    cases = 0
    for who, result in results.items():
        assert result["returncode"] == 0, f"schemathesis as {who}:\n{result['output']}"
        generated = result["test_cases"]["generated"]
        assert generated > 0, f"schemathesis as {who} ran no case:\n{result['output']}"
        cases += generated
    assert cases >= MIN_CASES, f"only {cases} cases: raise TEST_SCHEMATHESIS_EXAMPLES"
