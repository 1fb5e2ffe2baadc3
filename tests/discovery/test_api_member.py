"""The member-facing discovery API: the catalog, my interests, my suggestions (the benchmark's
shape, in few queries), signals that reward my own decisions, my own signals and decisions
only (another member's answer 404, to members and staff alike), strict input, and the
per-member rate limits (429 at N+1 in the error shape with Retry-After; another member's
bucket untouched)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from rest_framework.test import APIClient

from discovery.models import Candidate, Category, IntentSignal, LearningEvent, UserInterest
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.services import catalog_seed_day0
from flags.config.services import config_set
from flags.models import Flag
from flags.snapshot import snapshot_clear

pytestmark = pytest.mark.django_db

SUGGESTIONS = "/api/discovery/suggestions"
SIGNALS = "/api/discovery/signals"
MY_INTERESTS = "/api/discovery/me/interests"
MY_SIGNALS = "/api/discovery/me/signals"
MY_DECISIONS = "/api/discovery/me/decisions"


@pytest.fixture
def catalog():
    catalog_seed_day0()
    for name in (LEARNING_ENABLED, MARKETPLACE_SUGGEST):  # as the data migration makes them
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})
    ai = Category.objects.get(slug="ai-tools")
    Candidate.objects.bulk_create([Candidate(name=f"ai {i}", category=ai, popularity=i / 20) for i in range(6)])
    config_set("ranker.policy", {"epsilon": 0.0, "slate_size": 5, "attribution_seconds": 600}, reason="test")


def client_for(django_user_model, username: str, *, staff: bool = False) -> APIClient:
    user = django_user_model.objects.create_user(username=username, is_staff=staff)  # no password: no hashing
    client = APIClient()
    client.force_authenticate(user)
    client.user = user  # type: ignore[attr-defined]
    return client


@pytest.fixture
def alice(catalog, django_user_model) -> APIClient:
    return client_for(django_user_model, "alice")


@pytest.fixture
def bob(catalog, django_user_model) -> APIClient:
    return client_for(django_user_model, "bob")


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_interests_round_trip_and_an_unknown_interest_changes_nothing(alice):
    catalog = alice.get("/api/discovery/interests").json()["results"]
    assert len(catalog) == 6 and any(row["slug"] == "ai" for row in catalog)
    assert all(set(row) == {"slug", "name"} for row in catalog)
    assert alice.get(MY_INTERESTS).json() == {"interests": {}}
    put = alice.put(MY_INTERESTS, {"interests": {"ai": 1, "fintech": 0.25}}, format="json")
    assert put.status_code == 200, put.content
    assert put.json() == {"interests": {"ai": 1.0, "fintech": 0.25}}
    assert alice.get(MY_INTERESTS).json() == {"interests": {"ai": 1.0, "fintech": 0.25}}

    unknown = alice.put(MY_INTERESTS, {"interests": {"ai": 0.5, "no-such-thing": 0.5}}, format="json")
    assert unknown.status_code == 404 and "interests" in unknown.json()["error"]["fields"]
    assert alice.get(MY_INTERESTS).json() == {"interests": {"ai": 1.0, "fintech": 0.25}}  # nothing changed

    assert alice.put(MY_INTERESTS, {"interests": {}}, format="json").json() == {"interests": {}}
    assert not UserInterest.objects.filter(user=alice.user).exists()


BAD_INTEREST_BODIES = [
    {"interests": {"ai": 1.5}},
    {"interests": {"ai": -0.1}},
    {"interests": {"ai": "0.5"}},
    {"interests": {"ai": True}},
    {"interests": {"ai": None}},
    {"interests": ["ai"]},
    {"interests": "ai"},
    {"interests": None},
    {"interests": {f"i{n}": 0.5 for n in range(201)}},
    {},
    [],
    "x",
]


def test_a_bad_interests_body_is_a_400_and_an_unknown_key_of_any_text_a_404_never_a_500(alice):
    for body in BAD_INTEREST_BODIES:
        response = alice.put(MY_INTERESTS, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert set(response.json()["error"]) == {"code", "message", "fields"}
    for slug in ("\x00", "a" * 5000, "ai\x00", "", " ai", "ünï", "ai" * 26):
        response = alice.put(MY_INTERESTS, {"interests": {slug: 0.5}}, format="json")
        assert response.status_code == 404, (slug, response.content)
        assert not slug or slug not in response.json()["error"]["message"]  # the caller's text is not repeated
    assert not UserInterest.objects.filter(user=alice.user).exists()


def test_suggestions_have_the_benchmarks_shape_and_take_few_queries(
    alice, flags_snapshot_warm, discovery_catalog_warm, django_assert_max_num_queries
):
    alice.put(MY_INTERESTS, {"interests": {"ai": 1.0}}, format="json")
    alice.get(SUGGESTIONS)  # warms the config read
    # The member's weights and the logged decision: the candidates, their scores and the
    # slate's names come from the process's catalog.
    with django_assert_max_num_queries(2):
        response = alice.get(SUGGESTIONS, {"limit": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"decision_id", "personal", "items"}
    assert body["personal"] is True and len(body["items"]) == 3
    assert set(body["items"][0]) >= {"id", "name", "kind", "category"}
    assert body["items"][0]["category"] in ("ai-tools", "fintech-services")
    event = LearningEvent.objects.get(decision_id=body["decision_id"])
    assert event.user_id == alice.user.pk and event.slate == [i["id"] for i in body["items"]]


def test_bad_suggestion_parameters_are_a_400_naming_them(alice):
    for query in (
        "limit=0",
        "limit=101",
        "limit=x",
        "limit=",
        "limit=1&limit=2",
        "page=2",
        "limit=-1",
        "limit=%EF%BC%91",
    ):
        response = alice.get(f"{SUGGESTIONS}?{query}")
        assert response.status_code == 400 and error_code(response) == "invalid_parameter", query
        assert response.json()["error"]["fields"], query
    assert not LearningEvent.objects.exists()


def test_suggestions_switched_off_are_empty(alice):
    Flag.objects.filter(name=MARKETPLACE_SUGGEST).update(everyone=False)
    snapshot_clear()  # as a flip's stamp would make every process reload
    assert alice.get(SUGGESTIONS).json() == {"decision_id": None, "personal": False, "items": []}


def test_a_click_rewards_my_decision_and_only_i_see_my_rows(alice, bob, django_user_model):
    alice.put(MY_INTERESTS, {"interests": {"ai": 1.0}}, format="json")
    served = alice.get(SUGGESTIONS).json()
    chosen = served["items"][0]["id"]
    decision_id = served["decision_id"]

    # Bob cannot act on or read Alice's decision: the same 404 as a missing one.
    stolen = bob.post(SIGNALS, {"candidate": chosen, "kind": "click", "decision_id": decision_id}, format="json")
    assert stolen.status_code == 404
    missing = bob.get(f"{MY_DECISIONS}/{uuid.uuid4()}")
    theirs = bob.get(f"{MY_DECISIONS}/{decision_id}")
    assert theirs.status_code == missing.status_code == 404 and theirs.json() == missing.json()
    assert bob.get(f"{MY_DECISIONS}/not-a-uuid").status_code == 404

    click = alice.post(SIGNALS, {"candidate": chosen, "kind": "click", "decision_id": decision_id}, format="json")
    assert click.status_code == 201, click.content
    assert click.json()["decision_id"] == decision_id and click.json()["kind"] == "click"
    alice.post(SIGNALS, {"candidate": served["items"][1]["id"], "kind": "save"}, format="json")

    mine = alice.get(f"{MY_DECISIONS}/{decision_id}").json()
    assert mine["reward"] == 1.0 and mine["chosen"] == chosen and mine["rewarded_at"]
    signals = alice.get(MY_SIGNALS).json()
    assert [s["kind"] for s in signals["results"]] == ["save", "click"] and signals["next_before"] is None
    assert alice.get(MY_DECISIONS).json()["results"][0]["decision_id"] == decision_id

    # Bob, and staff, see none of Alice's rows through these endpoints.
    staff = client_for(django_user_model, "staffer", staff=True)
    for other in (bob, staff):
        assert other.get(MY_SIGNALS).json() == {"results": [], "next_before": None}
        assert other.get(MY_DECISIONS).json() == {"results": [], "next_before": None}
        assert other.get(f"{MY_DECISIONS}/{decision_id}").status_code == 404
    assert IntentSignal.objects.filter(user=bob.user).count() == 0


def test_my_signals_page_by_before(alice):
    candidate = Candidate.objects.order_by("id").first()
    for _ in range(5):
        assert alice.post(SIGNALS, {"candidate": candidate.pk, "kind": "view"}, format="json").status_code == 201
    first = alice.get(MY_SIGNALS, {"limit": 2}).json()
    assert len(first["results"]) == 2 and first["next_before"] == first["results"][-1]["id"]
    second = alice.get(MY_SIGNALS, {"limit": 2, "before": first["next_before"]}).json()
    third = alice.get(MY_SIGNALS, {"limit": 2, "before": second["next_before"]}).json()
    ids = [s["id"] for page in (first, second, third) for s in page["results"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5 and third["next_before"] is None
    assert alice.get(MY_SIGNALS, {"limit": 101}).status_code == 400
    assert alice.get(MY_DECISIONS, {"before": "0"}).status_code == 400


def test_signal_input_is_strict(alice):
    known = Candidate.objects.order_by("id").first().pk
    cases = [
        ({"candidate": 10**9, "kind": "click"}, 404),
        ({"candidate": str(known), "kind": "click"}, 400),
        ({"candidate": True, "kind": "click"}, 400),
        ({"candidate": 2**63, "kind": "click"}, 400),
        ({"candidate": 0, "kind": "click"}, 400),
        ({"kind": "click"}, 400),
        ({"candidate": known, "kind": "like"}, 400),
        ({"candidate": known, "kind": 1}, 400),
        ({"candidate": known, "kind": "click", "decision_id": "nope"}, 400),
        ({"candidate": known, "kind": "click", "decision_id": 5}, 400),
        ({"candidate": known, "kind": "click", "decision_id": "\x00"}, 400),
        ({"candidate": known, "kind": "click", "decision_id": str(uuid.uuid4())}, 404),
        ({"candidate": known, "kind": "click", "decision_id": None}, 201),
    ]
    for body, status in cases:
        response = alice.post(SIGNALS, body, format="json")
        assert response.status_code == status, (body, response.content)
        if status >= 400:
            assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert IntentSignal.objects.filter(user=alice.user).count() == 1


def test_anonymous_callers_get_401_and_a_session_write_needs_its_csrf_token(catalog, django_user_model):
    anonymous = APIClient()
    for path in ("/api/discovery/interests", MY_INTERESTS, SUGGESTIONS, MY_SIGNALS, MY_DECISIONS):
        assert anonymous.get(path).status_code == 401
    assert anonymous.post(SIGNALS, {"candidate": 1, "kind": "click"}, format="json").status_code == 401
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(django_user_model.objects.create_user(username="sess"))
    refused = browser.put(MY_INTERESTS, {"interests": {"ai": 1.0}}, content_type="application/json")
    assert refused.status_code == 403 and set(refused.json()["error"]) == {"code", "message", "fields"}
    # The page sets the CSRF cookie its script sends back; then the write goes through.
    page = browser.get("/discover")
    assert page.status_code == 200 and b'data-testid="interest-check-ai"' in page.content
    token = browser.cookies["csrftoken"].value
    accepted = browser.put(
        MY_INTERESTS, {"interests": {"ai": 1.0}}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 200, accepted.content
    ticked = browser.get("/discover").content.decode()
    assert 'value="ai" checked' in ticked and 'value="fintech" checked' not in ticked
    assert Client().get("/discover")["Location"].startswith("/signin?next=")  # signed out: sign in first


@pytest.mark.parametrize(
    "setting, method, path, body",
    [
        ("DISCOVERY_RATE_SUGGEST", "get", SUGGESTIONS, None),
        ("DISCOVERY_RATE_SIGNAL", "post", SIGNALS, "SIGNAL"),
        ("DISCOVERY_RATE_INTERESTS", "put", MY_INTERESTS, {"interests": {"ai": 0.5}}),
    ],
)
def test_a_rate_limit_bites_at_n_plus_one_per_member(alice, bob, settings, setting, method, path, body):
    setattr(settings, setting, "3/min")
    if body == "SIGNAL":
        body = {"candidate": Candidate.objects.order_by("id").first().pk, "kind": "view"}

    def call(client: APIClient):
        return getattr(client, method)(path, body, format="json") if body else client.get(path)

    for _ in range(3):
        assert call(alice).status_code in (200, 201)
    limited = call(alice)
    assert limited.status_code == 429
    assert error_code(limited) == "throttled" and int(limited["Retry-After"]) >= 1
    assert call(bob).status_code in (200, 201)  # another member's bucket
    if path == MY_INTERESTS:
        assert alice.get(MY_INTERESTS).status_code == 200  # reading is not an interest change
    setattr(settings, setting, "")  # no limit
    assert call(alice).status_code in (200, 201)
