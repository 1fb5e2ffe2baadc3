"""Secure defaults: who may call what, how callers authenticate (API tokens, sessions with CSRF),
JSON bodies only with a JSON type, failed sign-ins locked out on every path, HTTPS settings that
pass ``check --deploy``, and input no response can fail to render."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from matchplatform.authentication import client_ip
from matchplatform.renderers import JSONRenderer
from proposals.identity.services import member_create
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough password"
TOKEN = "/api/auth/token"
LOGIN = "/api/auth/login"
# The failures a test makes: more than the lockout needs (AUTH_FAILURE_LIMIT, 10 by default).
ATTEMPTS = 20


@pytest.fixture(autouse=True)
def _fast_hashes(settings):
    # Each wrong password costs a hash; the lockout, not the hasher, is under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def api(address: str = "10.0.0.1") -> APIClient:
    return APIClient(REMOTE_ADDR=address)


# --- anonymous callers -------------------------------------------------------------------------

# Endpoints anyone may call (by URL name; a method when only that one is public). Everything
# else, including any endpoint added later, must refuse an anonymous caller.
PUBLIC = {
    "home",
    "favicon",  # a redirect to the static icon
    "members:signin",
    "members:signout",  # asks, and signs out whoever is signed in (nobody)
    "schema",
    "docs",
    "health",
    "health-live",
    "health-ready",
    "match-run-submit",
    "match-run-detail",
    "match-run-matches",
    "proposals-status",
    "auth-nonce",
    "auth-siwe",
    "auth-login",
    "auth-logout",
    ("auth-token", "post"),
    "admin:login",
    "admin:logout",
}
_SAMPLES = {"int": "1", "str": "x1", "slug": "x1", "uuid": str(uuid.uuid4()), "path": "x1"}


def _sample(pattern) -> str:
    """A path this pattern matches: each converter gets a sample value; a named regex group
    (the admin's app list and catch-all) its first alternative, an unnamed one a sample id."""
    text = str(pattern)
    if isinstance(pattern, RoutePattern):
        return re.sub(r"<(?:(\w+):)?\w+>", lambda m: _SAMPLES[m.group(1) or "str"], text)
    text = re.sub(r"\(\?P<\w+>([^)]*)\)", lambda m: m.group(1).split("|")[0].replace(".*", "x1"), text)
    text = re.sub(r"\((?!\?)[^)]*\)", "x1", text)  # an unnamed group (the admin's history pages): a sample id
    return text.lstrip("^").rstrip("$")


def _endpoints(resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _endpoints(entry, prefix + _sample(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield "/" + prefix + _sample(entry.pattern), f"{namespace}{entry.name}", entry.callback


def _methods(callback) -> list[str]:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return ["get", "post"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]


def _refused(path: str, response) -> bool:
    if response.status_code in (401, 403):
        return not path.startswith("/api/") or set(response.json()) == {"error"}
    if response.status_code == 302:  # a page: to the member or the admin sign-in, with a way back
        return response["Location"].startswith(("/signin?", "/admin/login/?"))
    return response.status_code == 405  # a method the page does not take: nothing happened


def test_every_endpoint_refuses_anonymous_callers_unless_it_is_public():
    checked, exposed = [], []
    for path, name, callback in _endpoints():
        assert resolve(path).func == callback, (path, name)  # the sample reached the endpoint walked
        for method in _methods(callback):
            if name in PUBLIC or (name, method) in PUBLIC:
                continue
            response = Client().generic(method.upper(), path, "{}", content_type="application/json")
            checked.append((method, path))
            if not _refused(path, response):
                exposed.append((method.upper(), path, name, response.status_code))
    assert not exposed, exposed
    # The walk reached the API, the member pages and the admin.
    assert {"/api/matches/", "/vote", "/admin/"} <= {path for _, path in checked}
    assert len(checked) > 50


def test_the_public_list_names_only_endpoints_that_exist():
    names = {name for _, name, _ in _endpoints()}
    assert {entry if isinstance(entry, str) else entry[0] for entry in PUBLIC} <= names


def test_an_anonymous_api_call_answers_401_naming_the_token_scheme():
    response = Client().get("/api/matches/")
    assert_error_shape(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_the_schema_and_its_docs_are_public():
    assert Client().get("/api/schema/").status_code == 200
    assert Client().get("/api/docs/").status_code == 200


# --- API tokens --------------------------------------------------------------------------------
def test_a_member_exchanges_their_password_for_a_token_and_uses_it():
    user = member_create(username="ada", password=PASSWORD)
    created = api().post(TOKEN, {"username": "ada", "password": PASSWORD})
    assert created.status_code == 201, created.content
    key = created.json()["token"]
    assert created.json()["user_id"] == user.pk
    again = api().post(TOKEN, {"username": "ada", "password": PASSWORD})
    assert again.status_code == 200 and again.json()["token"] == key

    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/auth/me").json()["user_id"] == user.pk
    assert client.get("/api/matches/").status_code == 200
    # A token request writes without CSRF (a browser never attaches a token by itself).
    strict = APIClient(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")
    assert strict.patch("/api/me/profile", {"bio": "hello"}).status_code == 200


def test_a_revoked_token_no_longer_signs_anyone_in():
    user = member_create(username="bob", password=PASSWORD)
    key = Token.objects.create(user=user).key
    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.delete(TOKEN).status_code == 204
    assert not Token.objects.filter(user=user).exists()
    assert_error_shape(client.get("/api/auth/me"), 401, "authentication_failed")
    assert_error_shape(api().delete(TOKEN), 401, "not_authenticated")


def test_a_wrong_password_gets_no_token():
    member_create(username="cy", password=PASSWORD)
    assert_error_shape(api().post(TOKEN, {"username": "cy", "password": "guess"}), 403, "bad_credentials")
    assert not Token.objects.exists()


def test_basic_authentication_is_not_accepted():
    import base64

    member_create(username="dee", password=PASSWORD)
    basic = base64.b64encode(f"dee:{PASSWORD}".encode()).decode()
    assert_error_shape(APIClient(HTTP_AUTHORIZATION=f"Basic {basic}").get("/api/auth/me"), 401)


def test_demo_credentials_gives_admin_and_demo_tokens_that_work(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    demo = member_create(username="demo", password=PASSWORD)
    call_command("demo_credentials", stdout=io.StringIO())
    text = (tmp_path / "demo-credentials.txt").read_text()
    assert oct((tmp_path / "demo-credentials.txt").stat().st_mode & 0o777) == "0o600"
    values = dict(re.findall(r"^(\w+_TOKEN)=(\w+)$", text, re.M))
    admin = APIClient(HTTP_AUTHORIZATION=f"Token {values['ADMIN_TOKEN']}")
    assert admin.get("/api/match/health/hourly").status_code == 200  # staff only
    member = APIClient(HTTP_AUTHORIZATION=f"Token {values['DEMO_TOKEN']}")
    assert member.get("/api/auth/me").json()["user_id"] == demo.pk
    assert member.get("/api/match/health/hourly").status_code == 403
    # Run again (every make run): the same tokens, the admin untouched.
    call_command("demo_credentials", stdout=io.StringIO())
    assert dict(re.findall(r"^(\w+_TOKEN)=(\w+)$", (tmp_path / "demo-credentials.txt").read_text(), re.M)) == values


# --- JSON only, and CSRF for sessions ----------------------------------------------------------
def test_a_cross_site_text_plain_post_with_a_session_cookie_is_refused():
    user = member_create(username="eve", password=PASSWORD)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    # What a form on another site can send: text/plain, the session cookie, no CSRF token.
    body = '{"choice": "yes"}'
    response = browser.post(f"/api/proposals/{uuid.uuid4()}/vote", data=body, content_type="text/plain")
    assert_error_shape(response, 403)
    assert "CSRF" in response.json()["error"]["message"]
    # Even with the page's CSRF token, a body that is not JSON-typed is not read.
    browser.get("/signin")
    token = browser.cookies["csrftoken"].value
    response = browser.patch(
        "/api/me/profile", data='{"bio": "pwned"}', content_type="text/plain", HTTP_X_CSRFTOKEN=token
    )
    assert_error_shape(response, 415, "unsupported_media_type")
    assert browser.get("/api/me/profile").json().get("bio") != "pwned"


def test_a_session_write_needs_its_csrf_token_and_a_json_one_passes():
    user = member_create(username="fay", password=PASSWORD)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.patch("/api/me/profile", data='{"bio": "x"}', content_type="application/json")
    assert_error_shape(refused, 403)
    browser.get("/signin")
    token = browser.cookies["csrftoken"].value
    ok = browser.patch("/api/me/profile", data='{"bio": "x"}', content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200, ok.content


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "*/*", "application/*", ""],
)
def test_a_sign_in_body_that_is_not_json_typed_is_a_415(content_type):
    # A cross-site form could post these to sign a visitor in to an attacker's account.
    member_create(username="gus", password=PASSWORD)
    body = json.dumps({"username": "gus", "password": PASSWORD})
    response = api().generic("POST", LOGIN, body, content_type=content_type)
    assert_error_shape(response, 415, "unsupported_media_type")
    assert "sessionid" not in response.cookies


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/vnd.x+json"]
)
def test_json_bodies_are_read_with_any_json_media_type(content_type):
    member_create(username="hal", password=PASSWORD)
    body = json.dumps({"username": "hal", "password": PASSWORD})
    assert api().generic("POST", LOGIN, body, content_type=content_type).status_code == 200


def test_the_schema_declares_json_request_bodies_only():
    paths = json.loads(Client().get("/api/schema/", {"format": "json"}).content)["paths"]
    media = {m for ops in paths.values() for op in ops.values() for m in op.get("requestBody", {}).get("content", {})}
    assert media == {"application/json"}


# --- failed sign-ins ---------------------------------------------------------------------------
def _lockout_reached(responses) -> None:
    statuses = [r.status_code for r in responses]
    assert 429 in statuses, statuses
    first = statuses.index(429)
    assert all(s == 429 for s in statuses[first:]), statuses  # and it stays locked
    assert int(responses[first]["Retry-After"]) > 0


@pytest.mark.parametrize("path", [LOGIN, TOKEN])
def test_twenty_wrong_passwords_on_the_api_lock_the_client_out(path):
    member_create(username="ida", password=PASSWORD)
    client = api("10.0.0.2")
    responses = [client.post(path, {"username": "ida", "password": f"guess {i}"}) for i in range(ATTEMPTS)]
    _lockout_reached(responses)
    assert_error_shape(responses[-1], 429, "locked_out")
    # Locked out means the right password too, from there; another client is not affected.
    assert_error_shape(client.post(path, {"username": "ida", "password": PASSWORD}), 429, "locked_out")
    assert api("10.0.0.3").post(path, {"username": "ida", "password": PASSWORD}).status_code in (200, 201)


def test_wrong_passwords_for_many_accounts_lock_the_client_out():
    for i in range(ATTEMPTS):
        member_create(username=f"acct{i}", password=PASSWORD)
    client = api("10.0.0.4")
    responses = [client.post(LOGIN, {"username": f"acct{i}", "password": "guess"}) for i in range(ATTEMPTS)]
    _lockout_reached(responses)


def test_twenty_wrong_passwords_on_the_sign_in_page_show_a_lockout():
    member_create(username="jo", password=PASSWORD)
    browser = Client(REMOTE_ADDR="10.0.0.5")
    responses = [browser.post("/signin", {"username": "jo", "password": f"guess {i}"}) for i in range(ATTEMPTS)]
    _lockout_reached(responses)
    refused = browser.post("/signin", {"username": "jo", "password": PASSWORD})
    assert refused.status_code == 429
    assert b"Too many failed attempts" in refused.content and b'data-testid="signin-error"' in refused.content
    assert "_auth_user_id" not in browser.session


def test_twenty_wrong_passwords_on_the_admin_login_show_a_lockout(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    browser = Client(REMOTE_ADDR="10.0.0.6")
    responses = [
        browser.post("/admin/login/?next=/admin/", {"username": "root", "password": f"guess {i}"})
        for i in range(ATTEMPTS)
    ]
    _lockout_reached(responses)
    assert b"Too many failed attempts" in responses[-1].content
    assert browser.post("/admin/login/", {"username": "root", "password": PASSWORD}).status_code == 429
    assert "_auth_user_id" not in browser.session


def test_twenty_wrong_tokens_lock_the_client_out():
    user = member_create(username="kim", password=PASSWORD)
    key = Token.objects.create(user=user).key
    responses = [
        APIClient(REMOTE_ADDR="10.0.0.7", HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}").get("/api/matches/")
        for _ in range(ATTEMPTS)
    ]
    assert_error_shape(responses[0], 401, "authentication_failed")
    _lockout_reached(responses)
    assert_error_shape(responses[-1], 429, "locked_out")
    # A valid token still works from there: a lockout stops guessing, not the members behind it.
    assert APIClient(REMOTE_ADDR="10.0.0.7", HTTP_AUTHORIZATION=f"Token {key}").get("/api/matches/").status_code == 200


def test_twenty_refused_wallet_signatures_lock_the_client_out():
    from eth_account import Account

    from proposals.identity.services import wallet_nonce_issue
    from tests.proposals.test_siwe import sign, siwe_text

    client = api("10.0.0.8")
    responses = []
    for _ in range(ATTEMPTS):
        text = siwe_text(address=Account.create().address, nonce=wallet_nonce_issue().nonce)
        forged = sign(Account.create(), text)
        responses.append(client.post("/api/auth/siwe", {"message": text, "signature": forged}))
    assert_error_shape(responses[0], 403, "siwe_bad_signature")
    _lockout_reached(responses)
    assert_error_shape(responses[-1], 429, "locked_out")


def test_signing_in_to_ones_own_account_does_not_clear_the_failures_on_another(settings):
    # An attacker with an account of their own must not reset the client's count between guesses.
    settings.AXES_FAILURE_LIMIT = 4
    member_create(username="lee", password=PASSWORD)
    member_create(username="mallory", password=PASSWORD + "-m")
    client = api("10.0.0.9")
    for _ in range(3):
        assert client.post(LOGIN, {"username": "lee", "password": "guess"}).status_code == 403
    assert client.post(LOGIN, {"username": "mallory", "password": PASSWORD + "-m"}).status_code == 200
    assert_error_shape(client.post(LOGIN, {"username": "lee", "password": "guess"}), 429, "locked_out")


def test_lockouts_are_listed_in_the_admin(django_user_model):
    member_create(username="max", password=PASSWORD)
    for _ in range(ATTEMPTS):
        api("10.0.0.10").post(LOGIN, {"username": "max", "password": "guess"})
    operator = Client()
    operator.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD))
    page = operator.get("/admin/axes/accessattempt/?locked_out=yes")
    assert page.status_code == 200
    assert b"10.0.0.10" in page.content and b"max" in page.content


def test_the_client_address_is_read_as_the_throttles_read_it(rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5")
    assert client_ip(request) == "10.1.1.1"  # no proxy: a client cannot pick its address
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert client_ip(request) == "203.0.113.5"  # the address our one proxy appended
    garbage = rf.get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="not-an-address")
    assert client_ip(garbage) == "10.1.1.1"


# --- HTTPS settings ----------------------------------------------------------------------------
def _documented_production_environment() -> dict[str, str]:
    """The environment .env.example documents for production, with real values for its
    placeholders (a fresh secret, the tests' database URL)."""
    text = (ROOT / ".env.example").read_text()
    block = text.split("# Documented production environment", 1)[1].split("\n\n", 1)[0]
    env = dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", block))
    env["SECRET_KEY"] = secrets.token_hex(32)
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/matchplatform"
    return env


@pytest.mark.slow
def test_check_deploy_with_the_documented_production_environment_prints_no_warning():
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")}
    env.update(_documented_production_environment())
    assert env["DJANGO_ENV"] == "production" and "SECURE_PROXY_SSL_HEADER" in env
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_development_serves_plain_http():
    assert not django_settings.SECURE_SSL_REDIRECT and not django_settings.SESSION_COOKIE_SECURE
    assert Client().get("/api/schema/").status_code == 200


def test_with_the_https_redirect_on_health_stays_reachable_over_http(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/api/schema/").status_code == 301
    assert Client().get("/api/health/live").status_code != 301


# --- input no response can fail on -------------------------------------------------------------
@pytest.fixture
def voter(settings):
    from proposals.models import Proposal, ProposalStatus
    from proposals.voting.services import proposal_queue_refill, proposals_open

    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 3
    for i in range(8):
        member_create(username=f"v{i}", interests=["ai", "music"])
    proposal_queue_refill(force=True)
    proposals_open(force=True)
    proposal = Proposal.objects.filter(status=ProposalStatus.VOTING).first()
    client = APIClient()
    client.force_authenticate(proposal.voters.first().voter)
    return client, proposal


@pytest.mark.parametrize("value", ["\udfff", "\ud800", "yes\ud83d", "\udc00\ud800"])
def test_a_lone_surrogate_in_a_vote_is_a_400_not_a_500(voter, value):
    client, proposal = voter
    body = json.dumps({"choice": value})  # ASCII escapes, as a client sends them: "\udfff"
    response = client.post(f"/api/proposals/{proposal.public_id}/vote", body, content_type="application/json")
    assert_error_shape(response, 400)


@pytest.mark.parametrize(
    "body", [{"privacy": "\ud800"}, {"display_name": "x\udfff"}, {"\ud800": 1}, {"bio": ["\udfff"]}]
)
def test_a_lone_surrogate_anywhere_in_a_profile_update_is_a_400_not_a_500(body):
    client = APIClient()
    client.force_authenticate(member_create(username="ned", password=PASSWORD))
    response = client.patch("/api/me/profile", json.dumps(body), content_type="application/json")
    assert_error_shape(response, 400)


def test_a_valid_surrogate_pair_is_text_and_is_accepted():
    client = APIClient()
    client.force_authenticate(member_create(username="oli", password=PASSWORD))
    response = client.patch("/api/me/profile", json.dumps({"bio": "\U0001f600"}), content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["bio"] == "\U0001f600"


def test_the_renderer_and_the_error_path_write_any_text():
    data = {
        "error": {"code": "invalid", "message": '"\udfff" is not a valid choice.', "fields": {"\ud800": ["\udfff"]}}
    }
    out = JSONRenderer().render(data)
    assert json.loads(out) == {
        "error": {"code": "invalid", "message": '"\ufffd" is not a valid choice.', "fields": {"\ufffd": ["\ufffd"]}}
    }
    assert json.loads(JSONRenderer().render(data, "application/json; indent=2")) == json.loads(out)

    from rest_framework.exceptions import ValidationError

    from matchplatform.exceptions import exception_handler

    response = exception_handler(ValidationError({"choice": ['"\udfff" is not a valid choice.']}), {})
    assert response is not None and response.status_code == 400
    json.loads(JSONRenderer().render(response.data))
