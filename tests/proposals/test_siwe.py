"""Sign-In with Ethereum (EIP-4361): real keys, real signatures, real PostgreSQL, and every
way a hostile client might try to get in as someone else."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from rest_framework.test import APIClient

from matchplatform.exceptions import InvalidInput
from proposals.identity import siwe
from proposals.identity.services import wallet_nonce_issue, wallet_sign_in
from proposals.identity.siwe import siwe_message_parse
from proposals.models import Profile, WalletNonce
from tests.support.errors import assert_error_shape

pytestmark = [pytest.mark.django_db]

NONCE = "/api/auth/nonce"
SIWE = "/api/auth/siwe"
LOGIN = "/api/auth/login"
LOGOUT = "/api/auth/logout"
ME = "/api/auth/me"
HOST = "testserver"  # what the test client's requests report as their host


@pytest.fixture(autouse=True)
def _generous_auth_rate(settings):
    settings.AUTH_RATE = "10000/min"


@pytest.fixture
def account():
    return Account.create()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def siwe_text(
    *,
    address: str,
    nonce: str,
    domain: str = HOST,
    statement: str | None = "Sign in to matchplatform.",
    uri: str = f"http://{HOST}/",
    chain_id: str = "1",
    issued_at: datetime | None = None,
    expiration_time: datetime | None = None,
    not_before: datetime | None = None,
) -> str:
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, ""]
    if statement is not None:
        lines += [statement, ""]
    else:
        lines += [""]
    lines += [
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {iso(issued_at or timezone.now())}",
    ]
    if expiration_time is not None:
        lines.append(f"Expiration Time: {iso(expiration_time)}")
    if not_before is not None:
        lines.append(f"Not Before: {iso(not_before)}")
    return "\n".join(lines)


def sign(account, text: str) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


def post(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def fresh_nonce(client) -> str:
    response = post(client, NONCE)
    assert response.status_code == 201, response.content
    return response.json()["nonce"]


def signed_in(client, account, **message):
    nonce = fresh_nonce(client)
    text = siwe_text(address=account.address, nonce=nonce, **message)
    return post(client, SIWE, {"message": text, "signature": sign(account, text)})


def nonce_used(nonce: str) -> bool:
    return WalletNonce.objects.get(nonce=nonce).used_at is not None


# --- nonces ----------------------------------------------------------------------------------


def test_a_nonce_is_long_alphanumeric_and_expires_after_the_configured_time(api_client, settings):
    settings.SIWE_NONCE_TTL_SECONDS = 120
    response = post(api_client, NONCE)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"nonce", "expires_at"}
    assert body["nonce"].isascii() and body["nonce"].isalnum()
    assert len(body["nonce"]) >= 17  # 62 ** 17 > 2 ** 96
    row = WalletNonce.objects.get(nonce=body["nonce"])
    assert row.used_at is None
    assert row.expires_at - row.created_at == timedelta(seconds=120)


def test_every_nonce_is_different():
    assert len({wallet_nonce_issue().nonce for _ in range(50)}) == 50


# --- signing in --------------------------------------------------------------------------------


def test_a_valid_sign_in_creates_the_member_and_starts_a_session(api_client, account, django_user_model):
    nonce = fresh_nonce(api_client)
    text = siwe_text(address=account.address, nonce=nonce)
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["wallet_address"] == account.address
    assert body["display_name"] == f"{account.address[:6]}…{account.address[-4:]}"
    user = django_user_model.objects.get(pk=body["user_id"])
    assert not user.has_usable_password()
    profile = Profile.objects.get(user=user)
    assert profile.wallet_address == account.address
    assert profile.wallet_verified_at is not None
    assert nonce_used(nonce)

    me = api_client.get(ME)
    assert me.status_code == 200
    assert me.json() == body


def test_signing_in_again_with_the_same_wallet_returns_the_same_member(account, django_user_model):
    first = signed_in(APIClient(), account)
    again = signed_in(APIClient(), account)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert django_user_model.objects.count() == 1
    assert Profile.objects.filter(wallet_address=account.address).count() == 1


def test_a_message_without_a_statement_signs_in(api_client, account):
    assert signed_in(api_client, account, statement=None).status_code == 200


def test_a_message_issued_a_few_seconds_ahead_of_the_server_clock_is_accepted(api_client, account):
    response = signed_in(api_client, account, issued_at=timezone.now() + timedelta(seconds=10))
    assert response.status_code == 200, response.content


# --- forged and mismatched signatures ------------------------------------------------------------


def test_a_signature_by_another_key_is_refused_and_does_not_use_up_the_nonce(api_client, account):
    nonce = fresh_nonce(api_client)
    text = siwe_text(address=account.address, nonce=nonce)
    forged = post(api_client, SIWE, {"message": text, "signature": sign(Account.create(), text)})
    assert_error_shape(forged, 403, "siwe_bad_signature")
    assert not nonce_used(nonce)
    assert api_client.get(ME).status_code == 401

    # The real owner can still use the nonce.
    genuine = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})
    assert genuine.status_code == 200, genuine.content


@pytest.mark.parametrize(
    "signature",
    [
        "0x" + "00" * 65,
        "0x" + "ff" * 65,
        "0x" + "11" * 64 + "63",  # v = 99
        "0x" + "ab" * 64,  # 64 bytes
        "0xnothex" + "0" * 123,
        "deadbeef",
        "not a signature",
        "0x",
    ],
)
def test_a_garbage_signature_is_refused_and_does_not_use_up_the_nonce(api_client, account, signature):
    nonce = fresh_nonce(api_client)
    text = siwe_text(address=account.address, nonce=nonce)
    assert_error_shape(post(api_client, SIWE, {"message": text, "signature": signature}), 403, "siwe_bad_signature")
    assert not nonce_used(nonce)


def test_a_signature_of_a_different_text_is_refused(api_client, account):
    nonce = fresh_nonce(api_client)
    text = siwe_text(address=account.address, nonce=nonce)
    other_text = siwe_text(address=account.address, nonce=nonce, statement="Something else.")
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, other_text)})
    assert_error_shape(response, 403, "siwe_bad_signature")


def test_a_message_naming_an_address_other_than_the_signer_is_refused(api_client, account, django_user_model):
    victim = Account.create()
    signed_in(APIClient(), victim)
    nonce = fresh_nonce(api_client)
    text = siwe_text(address=victim.address, nonce=nonce)
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})
    assert_error_shape(response, 403, "siwe_bad_signature")
    assert not nonce_used(nonce)
    assert api_client.get(ME).status_code == 401


# --- nonces that cannot be used ------------------------------------------------------------------


def test_a_reused_nonce_is_refused(account):
    client = APIClient()
    nonce = fresh_nonce(client)
    text = siwe_text(address=account.address, nonce=nonce)
    body = {"message": text, "signature": sign(account, text)}
    assert post(client, SIWE, body).status_code == 200

    replay = APIClient()
    assert_error_shape(post(replay, SIWE, body), 403, "siwe_nonce_used")
    assert replay.get(ME).status_code == 401


def test_an_expired_nonce_is_refused(api_client, account):
    nonce = fresh_nonce(api_client)
    WalletNonce.objects.filter(nonce=nonce).update(expires_at=timezone.now() - timedelta(seconds=1))
    text = siwe_text(address=account.address, nonce=nonce)
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})
    assert_error_shape(response, 403, "siwe_nonce_expired")
    assert not nonce_used(nonce)


def test_a_nonce_the_site_never_issued_is_refused(api_client, account, django_user_model):
    text = siwe_text(address=account.address, nonce="MadeUpByTheClient123")
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})
    assert_error_shape(response, 403, "siwe_nonce_unknown")
    assert not django_user_model.objects.exists()


# --- domain and times ------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["evil.example", "testserver.evil.example", "testserver:8443", "user@testserver"])
def test_a_message_made_for_another_domain_is_refused(api_client, account, domain):
    response = signed_in(api_client, account, domain=domain)
    assert_error_shape(response, 403, "siwe_domain")
    assert not WalletNonce.objects.filter(used_at__isnull=False).exists()


def test_the_domain_is_checked_against_the_host_the_request_reached(account):
    client = APIClient(HTTP_HOST="localhost:8000")
    assert signed_in(client, account, domain="localhost:8000").status_code == 200
    assert_error_shape(signed_in(client, account, domain=HOST), 403, "siwe_domain")


def test_an_expired_message_is_refused(api_client, account):
    response = signed_in(api_client, account, expiration_time=timezone.now() - timedelta(seconds=1))
    assert_error_shape(response, 403, "siwe_message_expired")


def test_a_message_that_is_not_valid_yet_is_refused(api_client, account):
    response = signed_in(api_client, account, not_before=timezone.now() + timedelta(minutes=10))
    assert_error_shape(response, 403, "siwe_not_yet_valid")


def test_a_message_issued_in_the_future_is_refused(api_client, account):
    response = signed_in(api_client, account, issued_at=timezone.now() + timedelta(minutes=10))
    assert_error_shape(response, 403, "siwe_issued_in_future")


def test_a_message_with_a_future_expiry_and_a_past_not_before_signs_in(api_client, account):
    now = timezone.now()
    response = signed_in(
        api_client, account, expiration_time=now + timedelta(minutes=5), not_before=now - timedelta(minutes=1)
    )
    assert response.status_code == 200, response.content


# --- malformed messages ----------------------------------------------------------------------------


def _lowercase_address(text, account):
    return text.replace(account.address, account.address.lower())


def _broken_checksum(text, account):
    address = account.address
    flipped = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    broken = address[:flipped] + address[flipped].swapcase() + address[flipped + 1 :]
    return text.replace(address, broken)


MUTATIONS = {
    "crlf line ends": lambda t, a: t.replace("\n", "\r\n"),
    "a trailing newline": lambda t, a: t + "\n",
    "a leading space": lambda t, a: " " + t,
    "a lowercase address": _lowercase_address,
    "a broken checksum": _broken_checksum,
    "a short address": lambda t, a: t.replace(a.address, a.address[:-1]),
    "no blank line after the address": lambda t, a: t.replace(a.address + "\n\n", a.address + "\n", 1),
    "one blank line where a missing statement needs two": lambda t, a: t.replace(
        "\n\nSign in to matchplatform.\n\n", "\n\n"
    ),
    "a statement with a line break": lambda t, a: t.replace("Sign in to", "Sign in\nto"),
    "a statement with a non-ascii letter": lambda t, a: t.replace("Sign in", "Sïgn in"),
    "a statement with a percent sign": lambda t, a: t.replace("Sign in", "100% sign in"),
    "version 2": lambda t, a: t.replace("Version: 1", "Version: 2"),
    "a missing version": lambda t, a: t.replace("Version: 1\n", ""),
    "a non-numeric chain id": lambda t, a: t.replace("Chain ID: 1", "Chain ID: one"),
    "a unicode digit chain id": lambda t, a: t.replace("Chain ID: 1", "Chain ID: \u0661"),
    "a seven-character nonce": lambda t, a: re.sub(r"Nonce: .*", "Nonce: abc1234", t),
    "a nonce with symbols": lambda t, a: t.replace("Nonce: ", "Nonce: abc-"),
    "fields out of order": lambda t, a: t.replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1"),
    "an invalid uri": lambda t, a: t.replace(f"URI: http://{HOST}/", "URI: not a uri"),
    "a uri with a bad percent escape": lambda t, a: t.replace(f"URI: http://{HOST}/", f"URI: http://{HOST}/%zz"),
    "an issued-at that is not a date": lambda t, a: t[: t.index("Issued At: ") + 11] + "yesterday",
    "an issued-at on the 31st of february": lambda t, a: t[: t.index("Issued At: ") + 11] + "2025-02-31T00:00:00Z",
    "an issued-at without a time zone": lambda t, a: t[: t.index("Issued At: ") + 11] + "2025-01-01T00:00:00",
    "an unknown trailing line": lambda t, a: t + "\nFavourite Colour: blue",
    "a resource that is not a uri": lambda t, a: t + "\nResources:\n- not a uri",
    "a header for no domain": lambda t, a: t.replace(f"{HOST} wants", " wants", 1),
    "a different header": lambda t, a: t.replace("wants you to sign in", "would like you to sign in"),
    "only the header": lambda t, a: t.split("\n")[0],
}


@pytest.mark.parametrize("mutation", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_a_malformed_message_is_refused_with_400_even_when_validly_signed(api_client, account, mutation):
    nonce = fresh_nonce(api_client)
    text = mutation(siwe_text(address=account.address, nonce=nonce), account)
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})
    assert_error_shape(response, 400, "siwe_malformed")
    assert not nonce_used(nonce)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": "", "signature": "0x00"},
        {"message": ["a"], "signature": "0x00"},
        {"message": "x" * 20_000, "signature": "0x00"},
    ],
)
def test_a_body_without_a_usable_message_is_a_400(api_client, body):
    assert_error_shape(post(api_client, SIWE, body), 400)


def test_a_body_that_is_not_json_is_a_400_in_the_error_shape(api_client):
    response = api_client.post(SIWE, data="message=hi", content_type="application/json")
    assert_error_shape(response, 400, "malformed")


def test_a_body_of_another_media_type_is_a_415_in_the_error_shape(api_client):
    response = api_client.post(SIWE, data="message=hi", content_type="application/x-www-form-urlencoded")
    assert_error_shape(response, 415, "unsupported_media_type")


def test_no_endpoint_accepts_a_bare_address_as_identity(api_client, account, django_user_model):
    Profile.objects.create(
        user=django_user_model.objects.create_user(username="owner"),
        display_name="Owner",
        wallet_address=account.address,
        wallet_verified_at=timezone.now(),
    )
    for url in (SIWE, LOGIN):
        response = post(api_client, url, {"address": account.address, "wallet_address": account.address})
        assert_error_shape(response, 400)
    response = post(api_client, SIWE, {"address": account.address, "message": "hi", "signature": "0x00"})
    assert_error_shape(response, 400, "siwe_malformed")
    assert api_client.get(ME).status_code == 401


# --- the parser itself ------------------------------------------------------------------------------


def test_the_parser_reads_every_field_of_a_full_message():
    address = Account.create().address
    text = "\n".join(
        [
            "https://example.com:8443 wants you to sign in with your Ethereum account:",
            address,
            "",
            "I accept the Terms: https://example.com/tos",
            "",
            "URI: https://example.com/login?next=/feed#top",
            "Version: 1",
            "Chain ID: 137",
            "Nonce: abcDEF123456",
            "Issued At: 2025-03-01T12:00:00.123456789+02:00",
            "Expiration Time: 2025-03-01T12:05:00Z",
            "Not Before: 2025-03-01t09:59:00z",
            "Request ID: req-1:@",
            "Resources:",
            "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
            "- https://example.com/claim.json",
        ]
    )
    parsed = siwe_message_parse(message=text)
    assert parsed.scheme == "https"
    assert parsed.domain == "example.com:8443"
    assert parsed.address == address
    assert parsed.statement == "I accept the Terms: https://example.com/tos"
    assert parsed.uri == "https://example.com/login?next=/feed#top"
    assert parsed.version == "1"
    assert parsed.chain_id == 137
    assert parsed.nonce == "abcDEF123456"
    assert parsed.issued_at == datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parsed.expiration_time == datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    assert parsed.not_before == datetime(2025, 3, 1, 9, 59, tzinfo=UTC)
    assert parsed.request_id == "req-1:@"
    assert parsed.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/claim.json",
    )


@pytest.mark.parametrize("domain", ["[::1]:8000", "127.0.0.1", "localhost", "xn--bcher-kva.example"])
def test_the_parser_accepts_every_kind_of_host(domain):
    text = siwe_text(address=Account.create().address, nonce="abcdefgh1", domain=domain, uri="urn:example:1")
    assert siwe_message_parse(message=text).domain == domain


@pytest.mark.parametrize("domain", ["[not-ipv6]", "exa mple.com", "example.com/path", "[fe80::1%25eth0]"])
def test_the_parser_refuses_a_domain_that_is_not_an_authority(domain):
    text = siwe_text(address=Account.create().address, nonce="abcdefgh1", domain=domain)
    with pytest.raises(InvalidInput) as error:
        siwe_message_parse(message=text)
    assert error.value.code == "siwe_malformed"


def _full(**overrides: str) -> str:
    fields = {
        "header": "example.com wants you to sign in with your Ethereum account:",
        "address": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "uri": "URI: https://example.com",
        "issued": "Issued At: 2025-01-01T00:00:00Z",
        "rest": "",
    }
    fields.update(overrides)
    lines = [fields["header"], fields["address"], "", "", fields["uri"], "Version: 1", "Chain ID: 1"]
    lines += ["Nonce: abcdefgh1", fields["issued"]]
    return "\n".join(lines) + fields["rest"]


@pytest.mark.parametrize(
    "message",
    [
        "",
        "x" * (siwe.MESSAGE_MAX_CHARS + 1),
        _full(uri="Link: https://example.com"),
        _full(issued="Issued: 2025-01-01T00:00:00Z"),
        _full(issued="Issued At: 2025-01-01T00:00:00+24:00"),
        _full(issued="Issued At: 2025-01-01T00:00:00+01:60"),
        _full(issued="Issued At: 2025-13-01T00:00:00Z"),
        _full(issued="Issued At: 2025-01-01 00:00:00Z"),
        _full(issued="Issued At: \u0662025-01-01T00:00:00Z"),
        _full(rest="\nRequest ID: a b"),
        _full(rest="\nRequest ID: x\nExpiration Time: 2025-01-01T00:00:00Z"),
        _full(rest="\nResources:\n-https://example.com"),
        _full(header="https:/example.com wants you to sign in with your Ethereum account:"),
        _full(header="[v1.x wants you to sign in with your Ethereum account:"),
    ],
)
def test_the_parser_refuses_what_the_grammar_does_not_allow(message):
    with pytest.raises(InvalidInput) as error:
        siwe_message_parse(message=message)
    assert error.value.code == "siwe_malformed"


def test_the_parser_accepts_a_leap_second_an_ip_future_host_and_an_empty_resource_list():
    parsed = siwe_message_parse(
        message=_full(
            header="[v1.fe80::a+en1] wants you to sign in with your Ethereum account:",
            issued="Issued At: 2016-12-31T23:59:60Z",
            rest="\nRequest ID: \nResources:",
        )
    )
    assert parsed.domain == "[v1.fe80::a+en1]"
    assert parsed.issued_at == datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert parsed.request_id == ""
    assert parsed.resources == ()


# --- password members and linking --------------------------------------------------------------------


@pytest.fixture
def password_member(django_user_model):
    user = django_user_model.objects.create_user(username="ada", password="correct horse battery")
    Profile.objects.create(user=user, display_name="Ada")
    return user


def test_a_member_signs_in_with_a_password(api_client, password_member):
    response = post(api_client, LOGIN, {"username": "ada", "password": "correct horse battery"})
    assert response.status_code == 200, response.content
    assert response.json() == {"user_id": password_member.pk, "wallet_address": None, "display_name": "Ada"}
    assert api_client.get(ME).json()["user_id"] == password_member.pk


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "ada", "password": "wrong"}, 403),
        ({"username": "nobody", "password": "correct horse battery"}, 403),
        ({"username": "ada", "password": " correct horse battery"}, 403),
        ({"username": "ada"}, 400),
        ({"password": "x"}, 400),
    ],
)
def test_a_wrong_or_incomplete_password_login_is_refused(api_client, password_member, body, status):
    assert_error_shape(post(api_client, LOGIN, body), status, "bad_credentials" if status == 403 else None)
    assert api_client.get(ME).status_code == 401


def test_a_signed_in_password_member_links_their_wallet(api_client, password_member, account, django_user_model):
    assert post(api_client, LOGIN, {"username": "ada", "password": "correct horse battery"}).status_code == 200
    linked = signed_in(api_client, account)
    assert linked.status_code == 200, linked.content
    assert linked.json() == {"user_id": password_member.pk, "wallet_address": account.address, "display_name": "Ada"}
    profile = Profile.objects.get(user=password_member)
    assert profile.wallet_address == account.address
    assert profile.wallet_verified_at is not None
    assert django_user_model.objects.count() == 1

    # From now on the wallet alone signs in to the same member.
    wallet_only = APIClient()
    assert signed_in(wallet_only, account).json()["user_id"] == password_member.pk


def test_a_signed_in_member_without_a_profile_gets_one_when_linking(api_client, account, django_user_model):
    user = django_user_model.objects.create_user(username="grace", password="pw-for-tests-1")
    api_client.force_login(user)
    response = signed_in(api_client, account)
    assert response.status_code == 200, response.content
    assert response.json() == {"user_id": user.pk, "wallet_address": account.address, "display_name": "grace"}


def test_a_wallet_linked_to_another_member_cannot_be_linked_again(api_client, password_member, account):
    owner = signed_in(APIClient(), account).json()
    api_client.force_login(password_member)
    nonce = fresh_nonce(api_client)
    text = siwe_text(address=account.address, nonce=nonce)
    response = post(api_client, SIWE, {"message": text, "signature": sign(account, text)})
    assert_error_shape(response, 409, "wallet_taken")
    assert Profile.objects.get(user=password_member).wallet_address is None
    assert Profile.objects.get(user_id=owner["user_id"]).wallet_address == account.address
    # The verified message is spent even though it was refused.
    assert nonce_used(nonce)
    assert api_client.get(ME).json()["user_id"] == password_member.pk


def test_a_member_with_a_wallet_is_not_silently_moved_to_another_wallet(api_client, password_member, account):
    api_client.force_login(password_member)
    assert signed_in(api_client, account).status_code == 200
    assert_error_shape(signed_in(api_client, Account.create()), 409, "wallet_already_linked")
    assert Profile.objects.get(user=password_member).wallet_address == account.address


def test_a_wallet_member_whose_address_is_someones_username_gets_another_username(account, django_user_model):
    django_user_model.objects.create_user(username=account.address.lower(), password="pw-for-tests-1")
    response = signed_in(APIClient(), account)
    assert response.status_code == 200, response.content
    user = django_user_model.objects.get(pk=response.json()["user_id"])
    assert user.username.startswith(account.address.lower() + "-")


def test_a_disabled_member_cannot_sign_in_with_their_wallet(account, django_user_model):
    user_id = signed_in(APIClient(), account).json()["user_id"]
    django_user_model.objects.filter(pk=user_id).update(is_active=False)
    client = APIClient()
    assert_error_shape(signed_in(client, account), 403, "account_disabled")
    assert client.get(ME).status_code == 401


# --- sessions, CSRF, throttling, schema ---------------------------------------------------------------


def test_logging_out_ends_the_session(api_client, account):
    assert signed_in(api_client, account).status_code == 200
    response = post(api_client, LOGOUT)
    assert response.status_code == 204
    assert_error_shape(api_client.get(ME), 401)


def test_an_anonymous_visitor_is_refused_by_me_in_the_error_shape(api_client):
    assert_error_shape(api_client.get(ME), 401, "not_authenticated")


def test_a_signed_in_session_must_send_its_csrf_token(password_member, account):
    client = Client(enforce_csrf_checks=True)
    # Anonymous requests need no token: that is how a visitor signs in at all.
    assert post(client, LOGIN, {"username": "ada", "password": "correct horse battery"}).status_code == 200
    nonce = wallet_nonce_issue().nonce
    text = siwe_text(address=account.address, nonce=nonce)
    refused = post(client, SIWE, {"message": text, "signature": sign(account, text)})
    assert_error_shape(refused, 403)
    assert "CSRF" in refused.json()["error"]["message"]
    assert not nonce_used(nonce)

    token = client.cookies["csrftoken"].value
    accepted = client.post(
        SIWE,
        data=json.dumps({"message": text, "signature": sign(account, text)}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert accepted.status_code == 200, accepted.content


def test_the_sign_in_endpoints_are_throttled_per_client(api_client, settings):
    settings.AUTH_RATE = "2/min"
    assert post(api_client, NONCE).status_code == 201
    assert post(api_client, NONCE).status_code == 201
    assert_error_shape(post(api_client, NONCE), 429, "throttled")
    assert_error_shape(post(api_client, SIWE, {}), 429, "throttled")
    assert_error_shape(post(api_client, LOGIN, {}), 429, "throttled")


def test_the_auth_endpoints_are_in_the_api_schema(api_client):
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for url in (NONCE, SIWE, LOGIN, LOGOUT, ME, "/api/auth/token"):
        assert url in paths, url
    siwe_post = paths[SIWE]["post"]
    assert list(siwe_post["requestBody"]["content"]) == ["application/json"]
    assert {"200", "400", "403", "409", "415", "429"} <= set(siwe_post["responses"])
    assert {"200", "201", "403", "429"} <= set(paths["/api/auth/token"]["post"]["responses"])
    assert {"204", "401"} <= set(paths["/api/auth/token"]["delete"]["responses"])


def test_the_service_never_takes_the_address_from_anywhere_but_the_signature(account):
    impostor = Account.create()
    nonce = wallet_nonce_issue().nonce
    text = siwe_text(address=account.address, nonce=nonce)
    signature = sign(impostor, text)
    with pytest.raises(Exception) as error:
        wallet_sign_in(message=text, signature=signature, domain=HOST)
    assert getattr(error.value, "code", None) == "siwe_bad_signature"


# --- races ---------------------------------------------------------------------------------------------


def _run_concurrently(bodies: list[dict], clients: list | None = None) -> list:
    """Post each body from its own thread and connection; every request passes signature
    recovery before any of them may go on to spend the nonce."""
    barrier = threading.Barrier(len(bodies), timeout=30)
    original = Account.recover_message

    def recover_then_wait(*args, **kwargs):
        signer = original(*args, **kwargs)
        barrier.wait()
        return signer

    results: list = [None] * len(bodies)

    def attempt(index: int) -> None:
        try:
            response = post(clients[index] if clients else APIClient(), SIWE, bodies[index])
            results[index] = (response.status_code, response.json())
        finally:
            connection.close()

    with mock.patch.object(siwe.Account, "recover_message", recover_then_wait):
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sign_ins_with_one_nonce_let_exactly_one_through(account, django_user_model):
    nonce = wallet_nonce_issue().nonce
    text = siwe_text(address=account.address, nonce=nonce)
    body = {"message": text, "signature": sign(account, text)}

    results = _run_concurrently([body, body])

    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 403], results
    refused = next(payload for status, payload in results if status == 403)
    assert refused["error"]["code"] == "siwe_nonce_used"
    assert django_user_model.objects.count() == 1
    assert nonce_used(nonce)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_sign_ins_of_one_wallet_make_one_member(account, django_user_model):
    bodies = []
    for _ in range(2):
        text = siwe_text(address=account.address, nonce=wallet_nonce_issue().nonce)
        bodies.append({"message": text, "signature": sign(account, text)})

    results = _run_concurrently(bodies)

    assert [status for status, _ in results] == [200, 200], results
    assert results[0][1]["user_id"] == results[1][1]["user_id"]
    assert django_user_model.objects.count() == 1
    assert Profile.objects.filter(wallet_address=account.address).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_members_linking_one_wallet_at_once_leave_it_with_exactly_one(account, django_user_model):
    bodies, clients = [], []
    for name in ("ada", "grace"):
        user = django_user_model.objects.create_user(username=name, password="pw-for-tests-1")
        Profile.objects.create(user=user, display_name=name)
        client = APIClient()
        client.force_login(user)
        clients.append(client)
        text = siwe_text(address=account.address, nonce=wallet_nonce_issue().nonce)
        bodies.append({"message": text, "signature": sign(account, text)})

    results = _run_concurrently(bodies, clients=clients)

    assert sorted(status for status, _ in results) == [200, 409], results
    assert next(payload for status, payload in results if status == 409)["error"]["code"] == "wallet_taken"
    assert Profile.objects.filter(wallet_address=account.address).count() == 1
