"""The Day-0 runbook's alert table as invariants: each fails (critical) on the figures that
break its threshold, and is ok on figures that keep it; request figures read "not enough data"
on too few requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db.models.functions import Now

from discovery.models import DiscoveryJob, DiscoveryTopic, Interest
from discovery.slos import SIGNIN_PAGE_POST_ROUTE
from ops.invariants import InvariantOutcome, invariant_evaluate, invariants_all
from tests.support.request_minutes import route_minute_put as add

pytestmark = pytest.mark.django_db

RUNBOOK = {
    "discovery.queue_p95_age_seconds": 300,
    "discovery.auth_login_p95_ms": 600,
    "discovery.slo_burn_rate_max": 2.0,
    "discovery.http_5xx_rate": 1.0,
}


def evaluate(name: str) -> InvariantOutcome:
    return invariant_evaluate(next(i for i in invariants_all() if i.name == name))


def test_each_alert_of_the_runbooks_table_is_an_invariant_at_its_threshold():
    registered = {i.name: i for i in invariants_all()}
    for name, threshold in RUNBOOK.items():
        assert registered[name].app == "discovery"
        assert registered[name].critical_above == threshold


def test_queue_p95_age_fails_when_the_waiting_jobs_are_old():
    assert evaluate("discovery.queue_p95_age_seconds").state == "ok"  # an empty queue
    interest = Interest.objects.create(slug="probe", name="Probe")
    users = User.objects.bulk_create([User(username=f"waiter-{i}") for i in range(20)])
    DiscoveryJob.objects.bulk_create(
        [DiscoveryJob(user=u, interest=interest, topic=DiscoveryTopic.REFRESH) for u in users]
    )
    DiscoveryJob.objects.update(available_at=Now() - timedelta(seconds=60))
    ok = evaluate("discovery.queue_p95_age_seconds")
    assert ok.state == "ok" and 60 <= ok.value < 70
    # Two of twenty waited 10 minutes: the 19th of 20 ascending ages is one of them.
    for job in DiscoveryJob.objects.order_by("id")[:2]:
        DiscoveryJob.objects.filter(pk=job.pk).update(available_at=Now() - timedelta(minutes=10))
    failing = evaluate("discovery.queue_p95_age_seconds")
    assert failing.state == "critical" and failing.value >= 600
    assert "20 jobs waiting" in failing.detail


def test_auth_login_p95_fails_over_600_ms_and_is_ok_under():
    add("auth-login", count=100, buckets={"le_250": 100})
    ok = evaluate("discovery.auth_login_p95_ms")
    assert ok.state == "ok" and ok.value <= 250 and ok.sample == 100
    # 100 slow page POSTs (500 ms..1 s): 200 sign-ins, a p95 of 950 ms (rank 190: 90 % into the bucket).
    add(SIGNIN_PAGE_POST_ROUTE, count=100, buckets={"le_1000": 100})
    failing = evaluate("discovery.auth_login_p95_ms")
    assert failing.state == "critical" and failing.value == pytest.approx(950.0) and failing.sample == 200


def test_auth_login_p95_reads_not_enough_data_on_a_few_sign_ins():
    add("auth-token", count=3, buckets={"le_inf": 3})
    assert evaluate("discovery.auth_login_p95_ms").state == "insufficient_data"


def test_burn_rate_max_fails_above_2_on_any_route_and_is_ok_at_1():
    add("matches", count=1000, errors=5)  # 1x of matches.availability (budget 0.5 %)
    ok = evaluate("discovery.slo_burn_rate_max")
    assert ok.state == "ok" and ok.value == pytest.approx(1.0)
    add("match-run-submit", count=1000, errors=15)  # 3x of run_submit.availability
    failing = evaluate("discovery.slo_burn_rate_max")
    assert failing.state == "critical" and failing.value == pytest.approx(3.0)
    assert "run_submit.availability" in failing.detail


def test_5xx_rate_fails_over_1_percent_of_every_request():
    add("matches", count=500, errors=2)
    add("auth-login", count=500, errors=3)
    ok = evaluate("discovery.http_5xx_rate")
    assert ok.state == "ok" and ok.value == pytest.approx(0.5) and ok.sample == 1000
    add("home", count=100, errors=20)  # now 25 of 1100: 2.27 %
    failing = evaluate("discovery.http_5xx_rate")
    assert failing.state == "critical" and failing.value == pytest.approx(100 * 25 / 1100, abs=0.001)
    assert failing.detail.startswith("n=1100")


def test_5xx_rate_leaves_out_requests_older_than_5_minutes():
    add("matches", count=1000, errors=1000, minutes_ago=20)
    add("matches", count=100, errors=0)
    outcome = evaluate("discovery.http_5xx_rate")
    assert outcome.state == "ok" and outcome.value == 0.0 and outcome.sample == 100
