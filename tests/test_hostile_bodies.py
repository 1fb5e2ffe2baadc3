"""Every hostile body of tests/support/hostile.py, posted to every write endpoint the schema
lists, as an anonymous caller, a member and staff: never a 5xx, and every refusal in the one
error shape.

The endpoints come from the OpenAPI document, so a new write endpoint is covered without
touching this file; path ids are real objects the member may act on, so the bodies reach
validation instead of stopping at a 404.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from flags.models import Flag
from flags.rollouts.services import rollout_create
from proposals.identity.services import member_create
from proposals.matches.services import event_match_create
from proposals.models import Conversation, ProposalVoter
from proposals.vocab import INTERESTS
from proposals.voting.services import proposal_queue_refill, proposals_open
from tests.factories import EventFactory, MatchRunFactory
from tests.support.hostile import HOSTILE_BODIES, field_bodies

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch", "delete")


def write_operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in WRITE_METHODS
    ]


def body_fields(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    """The property names of the operation's JSON request body, if it declares one."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = next(iter(content.values()), {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        schema = components.get(ref.rsplit("/", 1)[-1], {})
    return sorted(schema.get("properties", {}))


@pytest.fixture
def world(settings):
    settings.PROPOSALS_QUEUE_LOW = 4
    settings.PROPOSALS_QUEUE_HIGH = 6
    settings.PROPOSALS_VOTING_LOW = 2
    settings.PROPOSALS_VOTING_HIGH = 3
    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 4
    members = [
        member_create(username=f"h{i:02d}", interests=INTERESTS[i % 5 : i % 5 + 3], display_name=f"H {i}")
        for i in range(16)
    ]
    proposal_queue_refill()
    proposals_open()
    assignment = ProposalVoter.objects.select_related("proposal").order_by("id").first()
    assert assignment is not None
    member = assignment.voter
    other = next(m for m in members if m.pk != member.pk)
    match = event_match_create(
        event=EventFactory(name="Hostile Summit"),
        member_a=member,
        member_b=other,
        compatibility=0.5,
    )
    staff = User.objects.create_user(username="hostile-staff", password="pw-hostile-staff", is_staff=True)
    ids = {
        "proposal_id": str(assignment.proposal.public_id),
        "match_id": str(match.public_id),
        "conversation_id": str(Conversation.objects.get(match=match).public_id),
        "run_id": str(MatchRunFactory().run_id),
        "flag_name": Flag.objects.create(name="hostile_flag", percent=5).name,
        "rollout_name": rollout_create(name="hostile-rollout", flag="hostile_flag").name,
        "switch_name": "hostile.switch",
        "config_name": "runs.fetch",
        "queue_name": "discovery",
    }
    return {"member": member, "staff": staff, "ids": ids}


def in_error_shape(content: bytes) -> bool:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and {"code", "message", "fields"} <= error.keys()


def path_fill(path: str, ids: dict[str, str]) -> str:
    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        assert name in ids, f"no real object for the path parameter {name} of {path}: add one to the world fixture"
        return ids[name]

    return re.sub(r"\{(\w+)\}", value, path)


def test_no_hostile_body_makes_any_write_endpoint_answer_a_server_error(world):
    operations = write_operations()
    assert len(operations) >= 10, operations  # the schema lists the API's writes (not an empty walk)
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    callers: dict[str, User | None] = {"anonymous": None, "member": world["member"], "staff": world["staff"]}
    failures: list[str] = []
    sent = 0
    for method, path, operation in operations:
        url = path_fill(path, world["ids"])
        # Field bodies go as JSON (to reach validation); the fixed ones under a wrong type too.
        cases = [(label, body, "application/json") for label, body in HOSTILE_BODIES.items()]
        cases += [(label, body, "text/plain") for label, body in HOSTILE_BODIES.items()]
        fields = field_bodies(fields=body_fields(operation, components))
        cases += [(label, body, "application/json") for label, body in fields.items()]
        for who, user in callers.items():
            # A server error is recorded, not raised, so one run lists them all.
            client = APIClient(raise_request_exception=False)
            if user is not None:
                client.force_authenticate(user)
            for label, body, content_type in cases:
                response = client.generic(method.upper(), url, data=body, content_type=content_type)
                sent += 1
                where = f"{method.upper()} {path} as {who}, {content_type}, {label}"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code} {response.content[:200]!r}")
                elif response.status_code >= 400 and not in_error_shape(response.content):
                    failures.append(f"{where}: {response.status_code} not in the error shape {response.content[:99]!r}")
    assert sent > 1_000
    assert failures == [], "\n".join(failures[:40]) + f"\n({len(failures)} in all)"


@pytest.mark.parametrize(
    "url",
    ["/api/match/run/%00", "/api/match/run/a%00b/matches", "/api/matches/?status=%00", "/api/health?x=a%00"],
)
def test_a_nul_in_the_url_is_refused_with_a_400_even_with_a_wrong_token(url):
    # A wrong token is recorded by django-axes with the request's path and query: a NUL there
    # made PostgreSQL refuse the insert, and the caller got a 500.
    response = APIClient(raise_request_exception=False).get(url, HTTP_AUTHORIZATION="Token not-a-real-token")
    assert response.status_code == 400
    assert in_error_shape(response.content)
