"""The proposals API and its schema agree, both ways: what the schema allows is accepted, what
it forbids is a 400 in the error shape naming the parameter or field, and every status an
operation can answer is declared."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from proposals.api_serializers import MessageInputSerializer, ProfileInputSerializer, VoteInputSerializer
from proposals.identity.services import member_create
from proposals.matches.services import event_match_create
from proposals.models import Conversation, Message, Profile, ProposalVoter
from proposals.voting.services import proposal_queue_refill, proposals_open
from tests.factories import EventFactory
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.django_db

ID_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def inlined(node, schema):
    """A schema piece with its $refs to components replaced by the components."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inlined(schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]], schema)
        return {k: inlined(v, schema) for k, v in node.items()}
    if isinstance(node, list):
        return [inlined(v, schema) for v in node]
    return node


def operation(schema, path, method):
    return schema["paths"][path][method]


def parameter_schema(schema, path, method, name):
    for p in operation(schema, path, method)["parameters"]:
        if p["name"] == name:
            return p["schema"]
    raise AssertionError(f"{name} is not declared on {method} {path}")


def query_value_allowed(param_schema, raw: str) -> bool:
    """Whether the schema allows this query string value, read as OpenAPI reads it: an integer
    or number parameter is a JSON number written plainly, an array (form, exploded) one item."""
    if param_schema.get("type") == "array":
        return query_value_allowed(param_schema["items"], raw)
    value: object = raw
    if param_schema.get("type") in ("integer", "number") and re.fullmatch(
        r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?", raw
    ):
        value = json.loads(raw)
    try:
        jsonschema.validate(value, param_schema)
    except jsonschema.ValidationError:
        return False
    return True


def body_allowed(schema, path, method, body) -> bool:
    body_schema = inlined(
        operation(schema, path, method)["requestBody"]["content"]["application/json"]["schema"], schema
    )
    try:
        jsonschema.validate(body, body_schema)
    except jsonschema.ValidationError:
        return False
    return True


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def pair():
    """Two members with a match (event-made) and its conversation, and the event."""
    event = EventFactory(name="Demo day")
    me, other = member_create(username="me", display_name="Me"), member_create(username="other", display_name="Other")
    match = event_match_create(event=event, member_a=me, member_b=other, compatibility=0.5)
    return {
        "me": me,
        "other": other,
        "event": event,
        "match": match,
        "conversation": Conversation.objects.get(match=match),
    }


# -- query parameters: allowed by the schema <=> accepted ---------------------------------------------
FEED = "/api/matches/"
FEED_VALUES = {
    "status": ["pending", "pending,accepted", "expired,pending", "", "pending,", "open", " pending", "PENDING"],
    "event": ["0", "1", "-1", "", "abc", " 1", "1.5", "01", "²", str(ID_MAX), str(ID_MAX + 1)],
    "source": ["proposal", "event", "", "party", " event"],
    "sort": ["newest", "compatibility", "expiring_soon", "", "oldest", "newest "],
    "min_compatibility": ["0", "1", "0.5", "1e-5", "-0.0", "", " 0.5", "1.5", "nan", "inf", "1_0", ".5", "abc"],
    "page_size": ["1", "20", "100", "0", "101", "", "abc", "-1", "1.5"],
    "cursor": ["", "%%%", "a b"],
}


@pytest.mark.parametrize(
    ("name", "raw"), [(name, raw) for name, values in FEED_VALUES.items() for raw in values], ids=repr
)
def test_a_feed_parameter_is_accepted_exactly_when_the_schema_allows_it(schema, pair, name, raw):
    allowed = query_value_allowed(parameter_schema(schema, FEED, "get", name), raw)
    response = client_for(pair["me"]).get(FEED, {name: raw})
    if allowed:
        # An id the schema allows may name nothing: 404, never 400.
        assert response.status_code in (200, 404), (name, raw, response.content)
    else:
        assert_error_shape(response, 400, field=name)


@pytest.mark.parametrize("raw", ["0", "-1", "", "abc", " 5", "1.5", str(ID_MAX), str(ID_MAX + 1), "99999999"])
def test_mutual_connections_member_is_accepted_exactly_when_the_schema_allows_it(schema, pair, raw):
    path = "/api/matches/mutual-connections"
    allowed = query_value_allowed(parameter_schema(schema, path, "get", "member"), raw)
    response = client_for(pair["me"]).get(path, {"member": raw})
    if allowed:
        assert response.status_code == 404, (raw, response.content)  # no such member
    else:
        assert_error_shape(response, 400, field="member")


@pytest.mark.parametrize("raw", ["1", "30", "365", "0", "366", "", " 7", "-1", "7.5", "abc"])
def test_metrics_days_is_accepted_exactly_when_the_schema_allows_it(schema, staff_client, raw):
    path = "/api/matches/metrics"
    allowed = query_value_allowed(parameter_schema(schema, path, "get", "days"), raw)
    response = staff_client.get(path, {"days": raw})
    if allowed:
        assert response.status_code == 200, (raw, response.content)
    else:
        assert_error_shape(response, 400, field="days")


@pytest.mark.parametrize("raw", ["0", "1", str(ID_MAX), "-1", "", "abc", " 1", str(ID_MAX + 1)])
def test_conversation_after_is_accepted_exactly_when_the_schema_allows_it(schema, pair, raw):
    path = "/api/conversations/{conversation_id}/messages"
    allowed = query_value_allowed(parameter_schema(schema, path, "get", "after"), raw)
    response = client_for(pair["me"]).get(
        f"/api/conversations/{pair['conversation'].public_id}/messages", {"after": raw}
    )
    if allowed:
        assert response.status_code == 200, (raw, response.content)
    else:
        assert_error_shape(response, 400, field="after")


def test_messages_after_pages_from_the_id_given(pair):
    client = client_for(pair["me"])
    url = f"/api/conversations/{pair['conversation'].public_id}/messages"
    for text in ("one", "two"):
        assert client.post(url, {"body": text}, format="json").status_code == 201
    first = Message.objects.order_by("id").first()
    assert [m["body"] for m in client.get(url, {"after": first.pk}).json()["messages"]] == ["two"]
    assert_error_shape(client.get(url, {"since": 1}), 400, field="since")


def test_a_public_id_in_another_spelling_is_404_as_the_schema_says_uuid(pair):
    client = client_for(pair["me"])
    match_id = pair["match"].public_id
    assert client.get(f"/api/matches/{match_id}/").status_code == 200
    for spelling in (match_id.hex, f"{{{match_id}}}", f"urn:uuid:{match_id}"):
        assert client.get(f"/api/matches/{spelling}/").status_code == 404, spelling


# -- bodies: allowed by the schema <=> accepted --------------------------------------------------------
PROFILE_BODIES = [
    {},
    {"display_name": "Ada"},
    {"display_name": "  Ada  "},
    {"display_name": ""},
    {"display_name": "   "},
    {"display_name": 0},
    {"display_name": None},
    {"display_name": ["Ada"]},
    {"display_name": "a" * 80},
    {"display_name": "a" * 81},
    {"display_name": "a" + " " * 80},
    {"display_name": "Ada\x00"},
    {"bio": ""},
    {"bio": "x" * 2000},
    {"bio": "x" * 2001},
    {"bio": 5},
    {"bio": "nul\x00"},
    {"interests": []},
    {"interests": ["ai"]},
    {"interests": ["ai", "ai"]},
    {"interests": ["nope"]},
    {"interests": "ai"},
    {"interests": [1]},
    {"privacy": "public"},
    {"privacy": "Public"},
    {"privacy": 1},
    {"privacy": ""},
]


@pytest.mark.parametrize("body", PROFILE_BODIES, ids=repr)
def test_a_profile_update_is_accepted_exactly_when_the_schema_allows_it(schema, pair, body):
    allowed = body_allowed(schema, "/api/me/profile", "patch", body)
    before = Profile.objects.get(user=pair["me"]).display_name
    response = client_for(pair["me"]).patch("/api/me/profile", body, format="json")
    if allowed:
        assert response.status_code == 200, (body, response.content)
    else:
        assert_error_shape(response, 400, field=next(iter(body)))
        assert Profile.objects.get(user=pair["me"]).display_name == before


def test_a_number_is_not_stored_as_a_display_name(pair):
    response = client_for(pair["me"]).patch("/api/me/profile", {"display_name": 0}, format="json")
    assert_error_shape(response, 400, field="display_name")
    assert response.json()["error"]["code"] == "invalid_type"
    assert Profile.objects.get(user=pair["me"]).display_name == "Me"


MESSAGE_BODIES = [
    {"body": "hi"},
    {"body": " hi "},
    {"body": "x" * 4000},
    {"body": "x" * 4001},
    {"body": "x" + " " * 4000},
    {"body": ""},
    {"body": "  \n\t "},
    {"body": 5},
    {"body": None},
    {"body": "a\x00b"},
    {},
]


@pytest.mark.parametrize("body", MESSAGE_BODIES, ids=repr)
def test_a_message_is_accepted_exactly_when_the_schema_allows_it(schema, pair, body):
    path = "/api/conversations/{conversation_id}/messages"
    allowed = body_allowed(schema, path, "post", body)
    response = client_for(pair["me"]).post(
        f"/api/conversations/{pair['conversation'].public_id}/messages", body, format="json"
    )
    if allowed:
        assert response.status_code == 201, (body, response.content)
    else:
        assert_error_shape(response, 400, field="body")
        assert not Message.objects.exists()


@pytest.fixture
def voter(members, loop_settings):
    proposal_queue_refill()
    proposals_open()
    assignment = ProposalVoter.objects.select_related("proposal", "voter").order_by("id").first()
    return assignment.voter, assignment.proposal


@pytest.mark.parametrize(
    "body",
    [{"choice": "yes"}, {"choice": "no"}, {"choice": "Yes"}, {"choice": ""}, {"choice": 1}, {}, {"choice": None}],
)
def test_a_vote_is_accepted_exactly_when_the_schema_allows_it(schema, voter, body):
    user, proposal = voter
    allowed = body_allowed(schema, "/api/proposals/{proposal_id}/vote", "post", body)
    response = client_for(user).post(f"/api/proposals/{proposal.public_id}/vote", body, format="json")
    if allowed:
        assert response.status_code == 201, (body, response.content)
    else:
        assert_error_shape(response, 400, field="choice")


# -- error messages do not echo what was sent ------------------------------------------------------------
@pytest.mark.parametrize(
    ("serializer", "body"),
    [
        (VoteInputSerializer, {"choice": "\udfff"}),
        (VoteInputSerializer, {"choice": "<script>"}),
        (ProfileInputSerializer, {"privacy": "\ud800"}),
        (ProfileInputSerializer, {"interests": ["<script>"]}),
        (ProfileInputSerializer, {"display_name": "<script>" * 20}),
        (MessageInputSerializer, {"body": "<script>" * 600}),
    ],
)
def test_a_refused_value_is_not_repeated_in_the_error(serializer, body):
    checked = serializer(data=body)
    assert not checked.is_valid()
    text = json.dumps(checked.errors, ensure_ascii=False)
    assert "<script>" not in text and "\udfff" not in text and "\ud800" not in text
    text.encode()  # renders: nothing of the input's surrogates left


def test_a_lone_surrogate_in_a_choice_is_a_400_not_a_500(voter, pair):
    user, proposal = voter
    vote = client_for(user).post(
        f"/api/proposals/{proposal.public_id}/vote", b'{"choice": "\\udfff"}', content_type="application/json"
    )
    profile = client_for(pair["me"]).patch(
        "/api/me/profile", b'{"privacy": "\\ud800"}', content_type="application/json"
    )
    for response in (vote, profile):
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"error"}


# -- who gets what -----------------------------------------------------------------------------------------
def test_anonymous_callers_get_401_naming_the_token_scheme_and_the_status_stays_public(pair):
    anonymous = APIClient()
    response = anonymous.get(FEED)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"
    assert anonymous.get("/api/proposals-status").status_code == 200
    # The public status looks at no credentials: a wrong token there is no 401.
    assert anonymous.get("/api/proposals-status", HTTP_AUTHORIZATION="Token wrong").status_code == 200


def test_a_session_write_without_its_csrf_token_is_the_declared_403(pair):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(pair["me"])
    url = f"/api/conversations/{pair['conversation'].public_id}/messages"
    assert client.get(url).status_code == 200
    response = client.post(url, {"body": "hi"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_a_body_that_is_not_json_is_a_415(pair):
    response = client_for(pair["me"]).patch("/api/me/profile", "display_name=x", content_type="text/plain")
    assert response.status_code == 415 and set(response.json()) == {"error"}


# -- the schema declares every answer ----------------------------------------------------------------------
SIGNED_IN = {"401", "429", "503"}
BODY = {"400", "413", "415"}
DECLARED = {
    ("/api/me/profile", "get"): {"200"} | SIGNED_IN,
    ("/api/me/profile", "patch"): {"200", "403"} | BODY | SIGNED_IN,
    ("/api/proposals/next", "get"): {"200"} | SIGNED_IN,
    ("/api/proposals/{proposal_id}", "get"): {"200", "404"} | SIGNED_IN,
    ("/api/proposals/{proposal_id}/vote", "post"): {"200", "201", "403", "404", "409"} | BODY | SIGNED_IN,
    ("/api/matches/", "get"): {"200", "400", "404"} | SIGNED_IN,
    ("/api/matches/{match_id}/", "get"): {"200", "404"} | SIGNED_IN,
    ("/api/matches/{match_id}/accept", "post"): {"200", "403", "404", "409"} | SIGNED_IN,
    ("/api/matches/{match_id}/reject", "post"): {"200", "403", "404", "409"} | SIGNED_IN,
    ("/api/matches/{match_id}/follow-all", "post"): {"200", "403", "404"} | SIGNED_IN,
    ("/api/matches/mutual-connections", "get"): {"200", "400", "404"} | SIGNED_IN,
    ("/api/matches/metrics", "get"): {"200", "400", "403"} | SIGNED_IN,
    ("/api/conversations/{conversation_id}/messages", "get"): {"200", "400", "404"} | SIGNED_IN,
    ("/api/conversations/{conversation_id}/messages", "post"): {"201", "403", "404", "409"} | BODY | SIGNED_IN,
    ("/api/proposals-status", "get"): {"200", "503"},
}


def test_every_proposals_operation_declares_every_status_it_answers_with_the_error_shape(schema):
    for (path, method), statuses in DECLARED.items():
        op = operation(schema, path, method)
        assert set(op["responses"]) == statuses, (method, path, sorted(op["responses"]))
        for status in statuses - {"200", "201"}:
            content = op["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        assert "application/json" in op["responses"][min(statuses)]["content"]
        if "requestBody" in op:
            assert list(op["requestBody"]["content"]) == ["application/json"], (method, path)
        path_ids = [p for p in op.get("parameters", []) if p["in"] == "path"]
        assert all(p["schema"] == {"type": "string", "format": "uuid"} for p in path_ids), (method, path)
    assert operation(schema, "/api/proposals-status", "get").get("security") in (None, [])


def test_the_error_shape_lists_its_codes_from_the_one_enumeration(schema):
    from matchplatform.exceptions import ErrorCode

    detail = inlined(schema["components"]["schemas"]["ErrorDetail"], schema)
    code = detail["properties"]["code"]
    enum = code.get("enum") or code["allOf"][0]["enum"]
    assert set(enum) == {c.value for c in ErrorCode}


def test_a_refused_interest_is_one_flat_message_for_the_list(pair):
    response = client_for(pair["me"]).patch("/api/me/profile", {"interests": ["ai", "nope"]}, format="json")
    assert_error_shape(response, 400, field="interests")
    (message,) = response.json()["error"]["fields"]["interests"]
    assert message.startswith("Each item must be one of: ai, ") and "nope" not in message
