"""Row-level security on the member-owned tables (PostgreSQL, for real): under a role made for
the test (no superuser, not the owner, the data rights manage.py db_role_create grants), a
member's setting shows that member's interests, signals, decisions and discovery jobs and
nobody else's, refuses writes of another member's rows, and a request through the middleware
(a session or an API token) sees only its member's rows even from a view that forgets to filter.

The test database connects as a superuser, which bypasses the policies: each test switches to
the role with SET ROLE and back with RESET ROLE; the role and its grants are made inside the
test's transaction, so its rollback removes them."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from discovery import row_security
from discovery.models import Candidate, DiscoveryJob, IntentSignal, LearningEvent, UserInterest
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.row_security import (
    PROTECTED_TABLES,
    SCOPE_NONE,
    SCOPE_SYSTEM,
    member_scope,
    policies_present,
    role_check,
    scope_override,
    system_scope,
)
from discovery.services import catalog_seed_day0, signal_record, suggestions_for_user, user_interests_set
from flags.models import Flag

pytestmark = pytest.mark.django_db

MODELS = (UserInterest, IntentSignal, LearningEvent, DiscoveryJob)


# --- a view with the bug row security is there for: it forgets to filter by its member -------


def _everyone_rows() -> dict[str, list[int]]:
    return {m.__name__: sorted(set(m.objects.values_list("user_id", flat=True))) for m in MODELS}


def leaky_page(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_everyone_rows())


class LeakyApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(_everyone_rows())


urlpatterns = [path("leaky/page", leaky_page), path("leaky/api", LeakyApi.as_view())]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    # Each test's settings go back with its rollback: forget what the connection was set to.
    row_security._applied.clear()
    yield
    row_security._applied.clear()


@pytest.fixture
def members(django_user_model):
    """Two members, A and B, each with interests (and their discovery jobs), a logged
    decision and a click: written as the superuser, before any role is taken."""
    catalog_seed_day0()
    for name in (LEARNING_ENABLED, MARKETPLACE_SUGGEST):
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})
    made = []
    for username, interests in (("member-a", {"ai": 0.9, "climate": 0.5}), ("member-b", {"fintech": 0.8})):
        user = django_user_model.objects.create_user(username=username)
        user_interests_set(user=user, affinities=interests)
        served = suggestions_for_user(user=user)
        signal_record(user=user, candidate_id=served.candidates[0].pk, kind="click", decision_id=served.decision_id)
        made.append(user)
    for model in MODELS:
        assert set(model.objects.values_list("user_id", flat=True)) == {made[0].pk, made[1].pk}
    return made


@pytest.fixture
def app_role(settings) -> Iterator[str]:
    """The app's role, made by db_role_create, taken with SET ROLE for the test."""
    settings.ROW_SECURITY_SCOPE = "on"  # the superuser's session reports is_superuser even after SET ROLE
    role = f"mp_rls_test_{os.getpid()}"
    call_command("db_role_create", role=role, stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert role_check(role=role).subject_to_row_security
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {connection.ops.quote_name(role)}")
    try:
        yield role
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] != role


def _visible(user_id: int) -> dict[str, int]:
    return {m.__name__: m.objects.filter(user_id=user_id).count() for m in MODELS}


# --- the policies ----------------------------------------------------------------------------------


def test_the_migration_protects_every_member_owned_table_with_two_policies():
    migration = importlib.import_module("discovery.migrations.0005_row_security")
    assert tuple(migration.TABLES) == PROTECTED_TABLES
    found = policies_present()
    assert found == {t: sorted([f"{t}_owner", f"{t}_system"]) for t in PROTECTED_TABLES}


def test_another_members_setting_sees_none_of_a_members_rows(members, app_role):
    a, b = members
    with scope_override(member_scope(b.pk)):
        assert _visible(a.pk) == dict.fromkeys(_visible(a.pk), 0)
        assert all(n > 0 for n in _visible(b.pk).values())
        # Even asked for everything, only B's rows come back.
        for model in MODELS:
            assert set(model.objects.values_list("user_id", flat=True)) == {b.pk}
    with scope_override(member_scope(a.pk)):
        assert all(n > 0 for n in _visible(a.pk).values())
        assert _visible(b.pk) == dict.fromkeys(_visible(b.pk), 0)
    with scope_override(SCOPE_SYSTEM):
        assert all(n > 0 for n in _visible(a.pk).values()) and all(n > 0 for n in _visible(b.pk).values())
    with scope_override(SCOPE_NONE):
        assert sum(m.objects.count() for m in MODELS) == 0


def test_a_session_that_set_nothing_sees_nothing(members, app_role):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('matchplatform.scope', '', false), set_config('matchplatform.member_id', '', false)"
        )
        cursor.execute("SELECT count(*) FROM discovery_learningevent")
        assert cursor.fetchone()[0] == 0


def test_writes_of_another_members_rows_are_refused(members, app_role):
    a, b = members
    candidate = Candidate.objects.first()
    with scope_override(member_scope(b.pk)):
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            IntentSignal.objects.create(user=a, candidate=candidate, kind="click")
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            UserInterest.objects.filter(user=b).update(user=a)  # moving one's row to A: refused
        assert UserInterest.objects.filter(user=a).update(affinity=0.1) == 0  # A's rows: not there
        assert LearningEvent.objects.filter(user=a).delete()[0] == 0
        assert DiscoveryJob.objects.filter(user=a).update(status="dead") == 0
        IntentSignal.objects.create(user=b, candidate=candidate, kind="save")  # one's own: fine
    with scope_override(SCOPE_SYSTEM):
        assert not UserInterest.objects.filter(user=a, affinity=0.1).exists()
        assert LearningEvent.objects.filter(user=a).exists()
        assert IntentSignal.objects.filter(user=b, kind="save").exists()


def test_a_role_that_owns_the_tables_or_is_a_superuser_is_not_subject_to_it():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        me = cursor.fetchone()[0]
    check = role_check(role=me)
    assert not check.subject_to_row_security and "superuser" in check.detail
    assert role_check(role="no-such-role-here").detail == "no such role"


# --- requests through the middleware -----------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_a_member_request_sees_only_its_members_rows_from_a_view_that_forgets_to_filter(
    members, app_role, client, django_user_model
):
    a, b = members
    client.force_login(a)
    assert client.get("/leaky/page").json() == {m.__name__: [a.pk] for m in MODELS}
    client.force_login(b)
    assert client.get("/leaky/page").json() == {m.__name__: [b.pk] for m in MODELS}
    client.logout()
    assert client.get("/leaky/page").json() == {m.__name__: [] for m in MODELS}  # anonymous: nobody's
    staff = django_user_model.objects.create_user(username="ops-rls", is_staff=True)
    client.force_login(staff)
    assert client.get("/leaky/page").json() == {m.__name__: sorted([a.pk, b.pk]) for m in MODELS}


@pytest.mark.urls(__name__)
def test_an_api_token_request_is_scoped_to_its_member_once_drf_knows_it(members, app_role, monkeypatch):
    a, _ = members
    with scope_override(SCOPE_SYSTEM):
        key = Token.objects.create(user=a).key
    applied: list[str] = []
    real = row_security.scope_apply

    def spy(conn, scope):
        ran = real(conn, scope)
        if ran:
            applied.append(scope)
        return ran

    monkeypatch.setattr(row_security, "scope_apply", spy)
    client = APIClient()
    body = client.get("/leaky/api", HTTP_AUTHORIZATION=f"Token {key}").json()
    assert body == {m.__name__: [a.pk] for m in MODELS}
    # Anonymous until DRF authenticated the token, then A's: a statement each, no more.
    assert applied[-1] == member_scope(a.pk) and len(applied) <= 2


@pytest.mark.urls(__name__)
def test_a_member_request_sets_its_scope_with_one_statement(members, app_role, client, monkeypatch):
    a, _ = members
    applied: list[str] = []
    real = row_security.scope_apply

    def spy(conn, scope):
        ran = real(conn, scope)
        if ran:
            applied.append(scope)
        return ran

    monkeypatch.setattr(row_security, "scope_apply", spy)
    client.force_login(a)
    applied.clear()
    assert client.get("/leaky/page").status_code == 200
    assert applied == [member_scope(a.pk)]


@pytest.mark.urls(__name__)
def test_a_superusers_connection_runs_no_scope_statement_in_auto_mode(members, client, settings, monkeypatch):
    """The test suite's own case: the superuser bypasses the policies, so nothing is set."""
    settings.ROW_SECURITY_SCOPE = "auto"
    a, b = members
    monkeypatch.setattr(row_security, "SQL_SET", "SELECT 1/0")  # would fail if run
    client.force_login(a)
    body = client.get("/leaky/page").json()
    assert body == {m.__name__: sorted([a.pk, b.pk]) for m in MODELS}  # bypassed: the app filters
    assert not row_security.enforced(connection)


def test_a_member_request_that_raises_leaves_the_next_system_user_with_everything(members, app_role, rf):
    """The scope is not restored at the end of a request: the next code on the connection
    (here the test's own, outside any request: system) gets its own before its query."""
    a, b = members

    def failing_view(request: HttpRequest) -> JsonResponse:
        raise RuntimeError("boom")

    request = rf.get("/")
    request.user = a
    middleware = row_security.RowSecurityMiddleware(failing_view)
    with pytest.raises(RuntimeError):
        middleware(request)
    assert row_security.scope_wanted() == SCOPE_SYSTEM
    assert set(UserInterest.objects.values_list("user_id", flat=True)) == {a.pk, b.pk}


def test_system_scope_inside_a_member_scope_lets_a_worker_process_every_members_jobs(members, app_role):
    """What POST /api/queue-worker needs when a service account (a member to the middleware)
    calls it: the worker's pass wrapped in system_scope()."""
    from discovery.services import discovery_jobs_process_batch

    a, b = members
    with scope_override(member_scope(b.pk)):
        assert DiscoveryJob.objects.filter(status="queued").count() == DiscoveryJob.objects.filter(user=b).count()
        with system_scope():
            assert discovery_jobs_process_batch(limit=50) == 3  # A's two interests and B's one
        assert not DiscoveryJob.objects.filter(user=a).exists()
    with scope_override(SCOPE_SYSTEM):
        assert set(DiscoveryJob.objects.values_list("status", flat=True)) == {"done"}
