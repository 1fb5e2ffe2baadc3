"""POST /api/queue-worker: who may call it (staff, a service token; nobody else), its bounds,
and what it answers (processed, errors, dead) after leasing that topic's rows with that
ttl. Also ``manage.py service_token_create``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models.functions import Now
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import discovery.services as services
from discovery.events import JOBS_ALL, USER_SIGNUP
from discovery.models import DiscoveryEvent, DiscoveryJob, Interest, UserInterest
from discovery.services import catalog_seed_day0
from ops.models import DeadLetter

pytestmark = pytest.mark.django_db

URL = "/api/queue-worker"


@pytest.fixture
def member(django_user_model):
    catalog_seed_day0()
    return django_user_model.objects.create_user(username="member")  # no password: hashing costs a second


@pytest.fixture
def ops_client(django_user_model):
    staff = django_user_model.objects.create_user(username="ops", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture
def service_token() -> str:
    out = StringIO()
    call_command("service_token_create", "scheduler", stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def jobs_for(member, *slugs: str) -> list[DiscoveryJob]:
    return [
        DiscoveryJob.objects.create(topic="discovery.refresh", user=member, interest=Interest.objects.get(slug=s))
        for s in slugs
    ]


def test_anonymous_callers_get_401_members_403_staff_and_service_tokens_200(member, ops_client, service_token):
    body = {"topic": USER_SIGNUP, "limit": 5, "ttl": 60}
    anonymous = APIClient().post(URL, body, format="json")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    assert APIClient(HTTP_AUTHORIZATION="Token not-a-token").post(URL, body, format="json").status_code == 401
    signed_in = APIClient()
    signed_in.force_authenticate(member)
    refused = signed_in.post(URL, body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert DiscoveryEvent.objects.filter(status="queued").count() == 3  # member, ops, scheduler: none leased
    by_token = APIClient(HTTP_AUTHORIZATION=f"Token {service_token}").post(URL, {**body, "limit": 2}, format="json")
    assert by_token.status_code == 200, by_token.json()
    assert by_token.json() == {"processed": 2, "errors": 0, "dead": 0}
    by_staff = ops_client.post(URL, body, format="json")
    assert (by_staff.status_code, by_staff.json()) == (200, {"processed": 1, "errors": 0, "dead": 0})
    assert ops_client.post(URL, body, format="json").json() == {"processed": 0, "errors": 0, "dead": 0}


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"topic": USER_SIGNUP, "limit": 0}, "limit", "min_value"),
        ({"topic": USER_SIGNUP, "limit": 101}, "limit", "max_value"),
        ({"topic": USER_SIGNUP, "limit": "20"}, "limit", "invalid"),
        ({"topic": USER_SIGNUP, "ttl": 9}, "ttl", "min_value"),
        ({"topic": USER_SIGNUP, "ttl": 901}, "ttl", "max_value"),
        ({"topic": USER_SIGNUP, "ttl": 1.5}, "ttl", "invalid"),
        ({"topic": "discovery.nope"}, "topic", "invalid_choice"),
        ({"topic": 7}, "topic", "invalid_choice"),
        ({"limit": 5}, "topic", "required"),
    ],
)
def test_bounds_and_unknown_topics_are_400s_naming_the_field_and_lease_nothing(member, ops_client, body, field, code):
    answer = ops_client.post(URL, body, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], list(error["fields"])) == (code, [field])
    assert not DiscoveryEvent.objects.exclude(status="queued").exists()


def test_the_unknown_topic_error_of_the_service_names_the_field():
    from matchplatform.exceptions import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        services.queue_worker_run(topic="discovery.nope", limit=1, ttl=10)
    assert "topic" in refused.value.fields and "discovery.run" in refused.value.message


def test_the_counts_say_what_happened_to_each_leased_row_and_the_ttl_is_the_lease(
    member, ops_client, monkeypatch, settings
):
    settings.OPS_BACKOFF_BASE_SECONDS = 0.0
    ok, retried, last_try = jobs_for(member, "ai", "fintech", "health")
    DiscoveryJob.objects.filter(pk=last_try.pk).update(attempts=2, max_attempts=3)
    leases_left: dict[int, float] = {}
    real = services.discovery_job_process

    def flaky(*, lease):
        job = DiscoveryJob.objects.get(pk=lease.id)
        leases_left[job.pk] = (job.lease_expires_at - timezone.now()).total_seconds()
        if job.pk == ok.pk:
            return real(lease=lease)
        raise RuntimeError("catalog unreachable")

    monkeypatch.setattr(services, "discovery_job_process", flaky)
    answer = ops_client.post(URL, {"topic": JOBS_ALL, "limit": 10, "ttl": 300}, format="json")
    assert (answer.status_code, answer.json()) == (200, {"processed": 1, "errors": 2, "dead": 1})
    assert all(295 < left <= 301 for left in leases_left.values()), leases_left
    assert dict(DiscoveryJob.objects.values_list("pk", "status")) == {
        ok.pk: "done",
        retried.pk: "queued",
        last_try.pk: "dead",
    }
    assert DeadLetter.objects.filter(queue="discovery.discoveryjob", item_id=last_try.pk).exists()
    # limit is honoured: one row of the two queued is leased.
    DiscoveryJob.objects.filter(pk=retried.pk).update(available_at=Now())
    monkeypatch.setattr(services, "discovery_job_process", real)
    jobs_for(member, "climate")
    assert ops_client.post(URL, {"topic": JOBS_ALL, "limit": 1}, format="json").json()["processed"] == 1
    assert DiscoveryJob.objects.filter(status="queued").count() == 1


def test_a_topic_leases_only_its_own_rows(member, ops_client):
    (refresh,) = jobs_for(member, "ai")
    other = DiscoveryJob.objects.create(
        topic="discovery.interests-changed", user=member, interest=Interest.objects.get(slug="fintech")
    )
    answer = ops_client.post(URL, {"topic": "discovery.refresh"}, format="json")
    assert answer.json() == {"processed": 1, "errors": 0, "dead": 0}
    assert DiscoveryJob.objects.get(pk=refresh.pk).status == "done"
    assert DiscoveryJob.objects.get(pk=other.pk).status == "queued"
    assert DiscoveryEvent.objects.filter(status="queued").count() == 2  # events untouched


def test_the_sign_up_journey_over_http(member, ops_client):
    UserInterest.objects.create(user=member, interest=Interest.objects.get(slug="ai"), affinity=0.9)
    ops_client.post(URL, {"topic": USER_SIGNUP, "limit": 20, "ttl": 120}, format="json")
    assert list(DiscoveryJob.objects.values_list("topic", "status")) == [(USER_SIGNUP, "queued")]
    assert ops_client.post(URL, {"topic": JOBS_ALL}, format="json").json()["processed"] == 1
    assert DiscoveryJob.objects.get().candidates_found == 1


def test_service_token_create_makes_a_passwordless_account_with_one_permission(service_token, django_user_model):
    user = django_user_model.objects.get(username="scheduler")
    assert not user.has_usable_password() and not user.is_staff
    assert user.has_perm("discovery.run_queue_worker")
    assert Token.objects.get(user=user).key == service_token and len(service_token) == 40
    with pytest.raises(CommandError, match="already has a token"):
        call_command("service_token_create", "scheduler", stdout=StringIO(), stderr=StringIO())
    out = StringIO()
    call_command("service_token_create", "scheduler", "--rotate", stdout=out, stderr=StringIO())
    assert out.getvalue().strip() != service_token
    assert not Token.objects.filter(key=service_token).exists()


def test_service_token_create_refuses_a_persons_account(django_user_model):
    # A usable password (any stored hash that is not "!..."), without paying for hashing one.
    django_user_model.objects.create(username="alice", password="pbkdf2_sha256$1$salt$hash")
    with pytest.raises(CommandError, match="person"):
        call_command("service_token_create", "alice", stdout=StringIO(), stderr=StringIO())
    assert not Token.objects.filter(user__username="alice").exists()
