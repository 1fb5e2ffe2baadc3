"""Request metrics in a real web server: gunicorn's workers count their requests and flush
them from their own thread, and whatever is left is written when a worker stops."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from django.db.models import Sum

from ops.models import RouteMinute
from tests.support.servers import gunicorn_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def counted(route: str) -> int:
    return int(RouteMinute.objects.filter(route=route, flag="").aggregate(n=Sum("count"))["n"] or 0)


def test_gunicorn_workers_flush_their_counts_every_few_seconds_without_a_request_to_carry_them():
    with gunicorn_server(env={"REQUEST_METRICS_FLUSH_SECONDS": "0.5"}, workers=2, threads=4) as url:
        statuses = [get(f"{url}/api/health/live") for _ in range(20)]
        statuses += [get(f"{url}/no/such/{n}") for n in range(5)]
        assert statuses.count(200) == 20 and statuses.count(404) == 5
        # No further request: the workers' threads write on their own.
        deadline = time.monotonic() + 20
        while (counted("health-live"), counted("unmatched")) != (20, 5) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (counted("health-live"), counted("unmatched")) == (20, 5)
        assert not RouteMinute.objects.filter(route__startswith="/").exists()


def test_a_worker_that_stops_writes_what_it_had_not_flushed_yet():
    with gunicorn_server(env={"REQUEST_METRICS_FLUSH_SECONDS": "3600"}, workers=1, threads=4) as url:
        for _ in range(7):
            assert get(f"{url}/api/health/live") == 200
        time.sleep(0.5)
        assert counted("health-live") == 0  # the hour-long period has not come round
    # gunicorn_server stopped the server gracefully (SIGTERM): the worker flushed as it exited.
    assert counted("health-live") == 7
