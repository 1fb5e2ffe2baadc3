"""100 clients post different spellings of one URL at the same moment, against a real
threaded HTTP server and PostgreSQL: exactly one active run, no 5xx."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from runs.models import ACTIVE_RUN_STATUSES, MatchRun
from tests.support.servers import gunicorn_server

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


@pytest.fixture
def server():
    with gunicorn_server(env={"RUNS_SUBMIT_RATE": "100000/min"}, workers=2, threads=50) as url:
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

    with ThreadPoolExecutor(max_workers=100) as pool:
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
