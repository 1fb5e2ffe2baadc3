"""100 clients post different spellings of one URL at the same moment, against a real
threaded HTTP server and PostgreSQL, while another process holds 80 of PostgreSQL's 100
connections: exactly one active run, no 5xx.

The server is two gunicorn processes of 50 threads each, so every request has a thread; their
connections come from a pool of 5 per process, so the 100 requests share 10 connections and
fit beside the 80 held ones (and this test's own)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from runs.models import ACTIVE_RUN_STATUSES, MatchRun
from tests.support.servers import connections_held, gunicorn_server, web_connections_peak

SPELLINGS = [
    "https://acme.example",
    "https://acme.example/",
    "HTTPS://ACME.EXAMPLE",
    "https://www.acme.example",
    "https://acme.example:443/",
    "https://acme.example/#team",
    "https://acme.example/?utm_source=hn",
    "https://Acme.Example/?utm_medium=email&utm_campaign=x",
    "https://acme.example?gclid=abc",
    "https://www.ACME.example:443/?fbclid=1&ref=producthunt#top",
]


HELD_CONNECTIONS = 80
POOL_PER_PROCESS = 5


@pytest.fixture
def server():
    env = {"RUNS_SUBMIT_RATE": "100000/min", "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": str(POOL_PER_PROCESS)}
    with connections_held(HELD_CONNECTIONS), gunicorn_server(env=env, workers=2, threads=50) as url:
        yield url


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_hundred_concurrent_spellings_of_one_url_give_exactly_one_active_run(server):
    barrier = threading.Barrier(100)

    def submit(i: int) -> tuple[int, dict]:
        body = json.dumps({"url": SPELLINGS[i % len(SPELLINGS)]}).encode()
        request = urllib.request.Request(
            f"{server}/api/match/run",
            data=body,
            headers={"Content-Type": "application/json", "X-Forwarded-For": f"10.0.0.{i}"},
            method="POST",
        )
        barrier.wait(timeout=30)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    with web_connections_peak() as peak, ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(submit, range(100)))

    statuses = [status for status, _ in results]
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses.count(202) == 1, statuses
    assert statuses.count(200) == 99, statuses
    run_ids = {body["run_id"] for _, body in results}
    assert len(run_ids) == 1
    assert {body["canonical_url"] for _, body in results} == {"https://acme.example"}
    assert MatchRun.objects.filter(status__in=ACTIVE_RUN_STATUSES).count() == 1
    assert MatchRun.objects.count() == 1
    assert 0 < peak[0] <= 2 * POOL_PER_PROCESS, f"the web processes held {peak[0]} connections"
