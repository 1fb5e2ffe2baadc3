"""The pieces every API request goes through, each replacing a slower stock one: the
authentication backend's prepared user lookup, the orjson renderer, the Redis cache backend
that keeps its client, sessions read from the cache, and ``ops.db.prepared_cursor``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, authenticate, get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DrfJSONRenderer

from matchplatform.auth import ModelBackend
from matchplatform.renderers import JSONRenderer
from ops.db import prepared_cursor
from proposals.identity.services import member_create

pytestmark = pytest.mark.django_db
PASSWORD = "a long enough password"


# -- the authentication backend ---------------------------------------------------------------
def test_the_backend_reads_the_same_user_as_django_in_one_statement():
    user = member_create(username="ada", password=PASSWORD)
    user.first_name, user.email, user.is_staff = "Ada", "ada@example.org", True
    user.last_login = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    user.save()
    with CaptureQueriesContext(connection) as ctx:
        fast = ModelBackend().get_user(user.pk)
    stock = DjangoModelBackend().get_user(user.pk)
    assert len(ctx.captured_queries) == 1
    fields = [f.attname for f in get_user_model()._meta.concrete_fields]
    assert fast is not None and stock is not None
    assert {f: getattr(fast, f) for f in fields} == {f: getattr(stock, f) for f in fields}
    assert not fast._state.adding and fast._state.db == "default"  # a loaded row: save() updates it
    assert fast.check_password(PASSWORD)


@pytest.mark.parametrize("user_id", ["999999999", "not a number", "", None])
def test_the_backend_finds_no_one_for_an_unknown_or_malformed_id(user_id):
    assert ModelBackend().get_user(user_id) is None


def test_the_backend_refuses_an_inactive_member():
    user = member_create(username="gone", password=PASSWORD)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert ModelBackend().get_user(user.pk) is None


def test_the_api_token_lookup_reads_what_drf_reads_in_one_statement():
    from rest_framework.authentication import TokenAuthentication as DrfTokenAuthentication
    from rest_framework.authtoken.models import Token

    from matchplatform.authentication import TokenAuthentication

    user = member_create(username="tokened", password=PASSWORD)
    user.first_name, user.is_staff = "Tok", True
    user.last_login = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    user.save()
    key = Token.objects.create(user=user).key
    with CaptureQueriesContext(connection) as ctx:
        fast_user, fast_token = TokenAuthentication().authenticate_credentials(key)
    assert len(ctx.captured_queries) == 1
    stock_user, stock_token = DrfTokenAuthentication().authenticate_credentials(key)
    user_fields = [f.attname for f in get_user_model()._meta.concrete_fields]
    token_fields = [f.attname for f in Token._meta.concrete_fields]
    assert {f: getattr(fast_user, f) for f in user_fields} == {f: getattr(stock_user, f) for f in user_fields}
    assert {f: getattr(fast_token, f) for f in token_fields} == {f: getattr(stock_token, f) for f in token_fields}
    assert fast_token.user is fast_user and not fast_user._state.adding
    client = Client()
    assert client.get("/api/discovery/interests", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert client.get("/api/discovery/interests", HTTP_AUTHORIZATION=f"Token {key[:-1]}x").status_code == 401
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert client.get("/api/discovery/interests", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_a_session_signed_in_with_a_password_uses_it_and_ends_when_the_password_changes():
    user = member_create(username="bea", password=PASSWORD)
    client = Client()
    assert client.login(username="bea", password=PASSWORD)
    assert client.session[BACKEND_SESSION_KEY] == "matchplatform.auth.ModelBackend"
    assert client.get("/api/matches/").status_code == 200
    user.set_password("another long password")
    user.save()
    assert client.get("/api/matches/").status_code in (401, 403)


def test_a_session_signed_in_through_djangos_own_backend_stays_valid():
    # Sessions from before this backend name Django's ModelBackend.
    member_create(username="dan", password=PASSWORD)
    client = Client()
    assert client.login(username="dan", password=PASSWORD)
    session = client.session
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session.save()
    assert client.get("/api/matches/").status_code == 200


def test_a_wrong_password_is_checked_once_not_once_per_backend(monkeypatch, rf):
    member_create(username="eve", password=PASSWORD)
    checks = []
    original = get_user_model().check_password

    def counting(self, raw):
        checks.append(raw)
        return original(self, raw)

    monkeypatch.setattr(get_user_model(), "check_password", counting)
    # With a request, as every sign-in path passes one: django-axes's backend goes first.
    assert authenticate(rf.post("/signin"), username="eve", password="not the password") is None
    assert len(checks) == 1
    assert authenticate(rf.post("/signin"), username="eve", password=PASSWORD) is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepared statements")
@pytest.mark.django_db(transaction=True)
def test_prepared_statements_survive_a_migration_that_changes_a_returned_column():
    """A statement prepared before an ALTER that changes a column it returns fails with "cached
    plan must not change result type"; prepared_rows drops the prepared statements and runs it
    again, so signed-in requests and the feed keep working after a migration."""
    import psycopg

    user = member_create(username="fay", password=PASSWORD)
    backend = ModelBackend()
    assert backend.get_user(user.pk).username == "fay"  # prepared now
    dsn = connection.get_connection_params()
    other = psycopg.connect(
        **{k: v for k, v in dsn.items() if k in ("dbname", "user", "host", "port", "password")}, autocommit=True
    )
    try:
        other.execute("ALTER TABLE auth_user ALTER COLUMN first_name TYPE varchar(151)")
        assert backend.get_user(user.pk).username == "fay"
    finally:
        other.execute("ALTER TABLE auth_user ALTER COLUMN first_name TYPE varchar(150)")
        other.close()
    assert backend.get_user(user.pk).username == "fay"


# -- the renderer ------------------------------------------------------------------------------
def _payload():
    return {
        "utc": dt.datetime(2026, 11, 22, 13, 5, 7, 123456, tzinfo=dt.UTC),
        "whole_second": dt.datetime(2026, 11, 22, 13, 5, 7, tzinfo=dt.UTC),
        "offset": dt.datetime(2026, 11, 22, 13, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "naive": dt.datetime(2026, 11, 22, 13, 5, 7),
        "date": dt.date(2026, 11, 22),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "price": Decimal("12.50"),
        "lazy": gettext_lazy("Not found."),
        "text": 'naïve — ünïcode\u2028line\u2029para "quoted" </script>',
        "numbers": [0, -1, 2**53, 0.1, 0.82, 123456.75, True, False, None],
        "nested": {"list": [{"a": 1}, []], 3: "int key"},
    }


def test_the_renderer_writes_the_same_bytes_as_drf():
    assert JSONRenderer().render(_payload()) == DrfJSONRenderer().render(_payload())
    # Floats in exponent form are the same numbers, written without Python's padding zero.
    exponents = {"x": [1e-7, 1.5e300, -2.5e-12]}
    assert JSONRenderer().render(exponents) == b'{"x":[1e-7,1.5e+300,-2.5e-12]}'
    assert json.loads(JSONRenderer().render(exponents)) == json.loads(DrfJSONRenderer().render(exponents))


def test_the_renderer_leaves_indented_output_and_what_orjson_refuses_to_drf():
    data = {"big": 2**70, "when": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    assert JSONRenderer().render(data) == DrfJSONRenderer().render(data)
    indented = "application/json; indent=2"
    assert JSONRenderer().render(data, indented) == DrfJSONRenderer().render(data, indented)
    assert b"\n" in JSONRenderer().render(data, indented)
    assert JSONRenderer().render(None) == b""


def test_the_api_answers_through_it():
    assert settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] == ["matchplatform.renderers.JSONRenderer"]
    response = Client().get("/api/matches/")
    assert response.status_code in (401, 403) and response.json()["error"]


# -- the cache and the sessions in it ----------------------------------------------------------
@pytest.mark.skipif(not settings.CACHE_URL.startswith("redis"), reason="needs CACHE_URL on Redis (make test sets it)")
def test_the_redis_cache_keeps_one_client_and_sessions_are_read_from_it():
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    inner = cache._cache  # type: ignore[attr-defined]
    assert inner.get_client() is inner.get_client() is inner.get_client(write=True)
    cache.set("request-path-probe", {"n": 1}, 30)
    assert cache.get("request-path-probe") == {"n": 1}

    member_create(username="cai", password=PASSWORD)
    client = Client()
    assert client.login(username="cai", password=PASSWORD)
    client.get("/api/matches/")  # warm
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/api/matches/").status_code == 200
    assert not [q for q in ctx.captured_queries if "django_session" in q["sql"]]
    # A signed-in feed request: the session's user and the page, nothing else (django-axes
    # counts sign-ins, it never looks at a signed-in request).
    assert len(ctx.captured_queries) == 2, [q["sql"][:80] for q in ctx.captured_queries]


def test_a_request_with_an_api_token_reads_the_token_with_its_user_and_nothing_more():
    from rest_framework.authtoken.models import Token

    user = member_create(username="tia", password=PASSWORD)
    token = Token.objects.create(user=user)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    client.get("/api/matches/")  # warm
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/api/matches/").status_code == 200
    # The token joined to its user, and the page.
    assert len(ctx.captured_queries) == 2, [q["sql"][:80] for q in ctx.captured_queries]


# -- prepared statements -----------------------------------------------------------------------
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepared statements")
def test_a_statement_run_through_prepared_cursor_is_prepared_after_the_threshold():
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    sql = "SELECT %s::int + 41 AS answer_for_the_prepare_test"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%answer_for_the%"])
        assert cursor.fetchone()[0] == 0
    for _ in range(threshold + 1):
        with prepared_cursor() as cursor:
            cursor.execute(sql, [1])
            assert cursor.fetchone() == (42,)
    count = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s"
    with connection.cursor() as cursor:
        cursor.execute(count, ["%answer_for_the_prepare%"])
        assert cursor.fetchone()[0] == 1
        # Django's own cursors bind on the client and never prepare.
        for _ in range(threshold + 1):
            cursor.execute("SELECT %s::int AS never_prepared_probe", [1])
        cursor.execute(count, ["%never_prepared%"])
        assert cursor.fetchone()[0] == 0


def test_prepared_cursor_is_djangos_cursor_when_turned_off(settings):
    settings.DB_PREPARED_STATEMENTS = False
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
        assert type(cursor.cursor).__name__ != "ServerBindingCursor"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's loaders")
def test_prepared_cursor_reads_timestamps_as_the_orm_does_through_psycopgs_compiled_loader():
    from psycopg.types.datetime import TimestamptzLoader

    sql = "SELECT %s::timestamptz, NULL::timestamptz, '2026-03-29 01:30:00.123456+05:45'::timestamptz"
    value = dt.datetime(2026, 11, 22, 23, 59, 59, 999999, tzinfo=dt.UTC)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        expected = cursor.fetchone()
    with prepared_cursor() as fast:
        fast.execute(sql, [value])
        got = fast.fetchone()
        loader = fast.cursor.adapters.get_loader(fast.cursor.adapters.types["timestamptz"].oid, 0)
    assert got == expected
    assert [v.utcoffset() for v in (got[0], got[2])] == [dt.timedelta(0)] * 2
    assert got[0] == value and got[1] is None
    assert got[2] == dt.datetime(2026, 3, 28, 19, 45, 0, 123456, tzinfo=dt.UTC)
    # psycopg's compiled loader, not Django's pure-Python subclass.
    assert loader.__name__ == TimestamptzLoader.__name__ and loader.__module__.endswith("._psycopg")
