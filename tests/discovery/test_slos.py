"""The runbook's SLOs: auth.login's p95 over the real sign-in routes (the sign-in page's POSTs
counted apart from its GETs), read between the histogram's bounds; the discovery queue's p95
age; and every SLO's burn rate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db.models.functions import Now
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from discovery.models import DiscoveryJob, DiscoveryTopic, Interest
from discovery.slos import (
    AUTH_LOGIN,
    SIGNIN_PAGE_POST_ROUTE,
    discovery_queue_p95_age,
    histogram_count_slower,
    latency_slo_status,
    slo_burn_readings,
    slo_burn_worst,
)
from ops.models import LATENCY_FIELDS, RouteMinute
from ops.slo.histogram import histogram_percentile
from ops.slo.recorder import request_metrics_discard, request_metrics_flush
from ops.slo.services import route_minutes_add
from tests.support.request_minutes import now_minute
from tests.support.request_minutes import route_minute as delta

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_buffer():
    request_metrics_discard()
    yield
    request_metrics_discard()


def test_auth_login_names_the_real_sign_in_routes():
    assert AUTH_LOGIN.routes == ("auth-login", "auth-token", SIGNIN_PAGE_POST_ROUTE)
    assert reverse("auth-login") == "/api/auth/login" and reverse("auth-token") == "/api/auth/token"
    assert reverse("members:signin") == "/signin"
    assert (AUTH_LOGIN.quantile, AUTH_LOGIN.under_ms, AUTH_LOGIN.budget) == (0.95, 600.0, pytest.approx(0.05))


def test_the_sign_in_pages_posts_are_counted_apart_from_its_gets_and_the_api_under_its_name():
    client = Client()
    assert client.get("/signin").status_code == 200
    assert client.get("/signin").status_code == 200
    assert client.post("/signin", {"username": "nobody", "password": "wrong-password"}).status_code == 400
    assert client.post("/api/auth/login", {"username": "nobody", "password": "wrong"}, "application/json").status_code
    request_metrics_flush()
    counts = {r.route: r.count for r in RouteMinute.objects.filter(flag="", cohort="")}
    assert counts["members:signin"] == 2
    assert counts[SIGNIN_PAGE_POST_ROUTE] == 1
    assert counts["auth-login"] == 1


def test_slower_than_600_ms_reads_the_500_to_1000_bucket_as_the_percentile_does():
    # 100 requests: 90 under 500 ms, 10 between 500 and 1000 ms.
    buckets = [0] * len(LATENCY_FIELDS)
    buckets[LATENCY_FIELDS.index("le_500")] = 90
    buckets[LATENCY_FIELDS.index("le_1000")] = 10
    assert histogram_count_slower(buckets, ms=600) == pytest.approx(8.0)  # 4/5 of the bucket
    assert histogram_count_slower(buckets, ms=500) == pytest.approx(10.0)
    assert histogram_count_slower(buckets, ms=1000) == pytest.approx(0.0)
    # The p95 is where 5 % are slower: 750 ms, and exactly 5 are slower than it.
    p95 = histogram_percentile(buckets, 0.95)
    assert p95 == pytest.approx(750.0)
    assert histogram_count_slower(buckets, ms=p95) == pytest.approx(5.0)
    buckets[-1] = 3  # the open bucket (over 5 s) is slower than anything up to 5 s
    assert histogram_count_slower(buckets, ms=600) == pytest.approx(11.0)


def test_auth_login_burn_rate_sums_its_routes_over_both_windows_and_leaves_others_out():
    minute = now_minute()
    route_minutes_add(
        deltas=[
            # The last minutes: 500 API sign-ins and 500 page POSTs, 100 of them between 500
            # ms and 1 s (80 slower than 600 ms): 8 % over a 5 % budget.
            delta(minute - timedelta(minutes=1), "auth-login", count=500, buckets={"le_250": 450, "le_1000": 50}),
            delta(
                minute - timedelta(minutes=2), SIGNIN_PAGE_POST_ROUTE, count=500, buckets={"le_250": 450, "le_1000": 50}
            ),
            # Half an hour ago: 1000 fast token requests.
            delta(minute - timedelta(minutes=30), "auth-token", count=1000, buckets={"le_250": 1000}),
            # The page's GETs and other routes are not sign-ins.
            delta(minute - timedelta(minutes=1), "members:signin", count=1000, buckets={"le_inf": 1000}),
            delta(minute - timedelta(minutes=1), "matches", count=1000, buckets={"le_inf": 1000}),
        ]
    )
    status = latency_slo_status(AUTH_LOGIN, until=timezone.now())
    five, hour = status.windows["5m"], status.windows["1h"]
    assert (five.count, five.slower) == (1000, pytest.approx(80.0))
    assert five.burn_rate == pytest.approx(1.6)
    assert five.p95_ms == pytest.approx(750.0)  # over 600: the objective is missed in this window
    assert (hour.count, hour.burn_rate) == (2000, pytest.approx(0.8))
    assert status.burn_rate == pytest.approx(0.8) and status.sample == 1000
    readings = {r.slo: r for r in slo_burn_readings(until=timezone.now())}
    assert readings["auth.login"].burn_rate == pytest.approx(0.8)
    assert "login.latency" in readings and "matches.availability" in readings  # ops' SLOs too


def test_the_worst_burn_rate_needs_enough_requests(settings):
    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(minute - timedelta(minutes=1), "matches", count=5, errors=5),  # 200x, but 5 requests
            delta(minute - timedelta(minutes=1), "auth-login", count=100, errors=3),  # 3x over 100
        ]
    )
    worst = slo_burn_worst(until=timezone.now(), min_sample=20)
    assert worst.reading is not None and worst.reading.slo == "login.availability"
    assert worst.burn_rate == pytest.approx(3.0) and worst.sample == 100
    none = slo_burn_worst(until=timezone.now(), min_sample=1000)
    assert none.reading is None and none.sample == 100


def test_the_queue_p95_age_is_of_the_jobs_waiting_for_a_worker_by_the_database_clock():
    assert discovery_queue_p95_age().p95_seconds is None
    interest = Interest.objects.create(slug="probe", name="Probe")
    users = User.objects.bulk_create([User(username=f"waiter-{i}") for i in range(22)])
    # 20 available jobs that have waited 10, 20, ..., 200 s.
    DiscoveryJob.objects.bulk_create(
        [DiscoveryJob(user=u, interest=interest, topic=DiscoveryTopic.REFRESH) for u in users[:20]]
    )
    for index, job in enumerate(DiscoveryJob.objects.order_by("id")):
        DiscoveryJob.objects.filter(pk=job.pk).update(available_at=Now() - timedelta(seconds=10 * (index + 1)))
    # Backing off before a retry (not waiting for a worker), and done: neither counts.
    DiscoveryJob.objects.create(
        user=users[20],
        interest=interest,
        topic=DiscoveryTopic.REFRESH,
        available_at=timezone.now() + timedelta(hours=1),
    )
    done = DiscoveryJob.objects.create(user=users[21], interest=interest, topic=DiscoveryTopic.REFRESH, status="done")
    DiscoveryJob.objects.filter(pk=done.pk).update(available_at=Now() - timedelta(hours=5))
    age = discovery_queue_p95_age()
    assert age.waiting == 20
    # Nearest rank: the 19th of 20 ascending ages, 190 s (plus the test's own seconds).
    assert 190 <= age.p95_seconds < 195


def test_the_runbooks_thresholds_are_gate_metrics_for_the_canary():
    from flags.gates import GateWindow, gate_metric_get

    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(minute - timedelta(minutes=1), "auth-login", count=100, buckets={"le_1000": 100}),
            delta(minute - timedelta(minutes=1), "matches", count=1000, errors=15),  # 3x
        ]
    )
    until = timezone.now()
    window = GateWindow(flag="", since=until - timedelta(minutes=10), until=until)
    login = gate_metric_get("discovery.auth_login_p95_ms").compute(window)
    assert (login.value, login.sample) == (pytest.approx(975.0), 100)
    # auth.login: 80 of 100 slower than 600 ms over a 5 % budget, 16x (matches burns at 3x).
    burn = gate_metric_get("slo.burn_rate_max").compute(window)
    assert (burn.value, burn.sample, burn.detail) == (pytest.approx(16.0), 100, "auth.login")
