"""The worker's service: claim, fetch when needed, score, store once, ack; or retry and fail."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models.functions import Now

import runs.services as services
from ops.models import DeadLetter, QueueHistory
from runs.models import MatchRun, MatchRunStatus, Startup, StartupInvestorMatch
from runs.queue import runs_queue
from runs.services import match_run_submit, match_runs_process_batch
from tests.factories import InvestorFactory, MatchRunFactory, StartupFactory

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = b"""<!doctype html><html><head><title>Orbitly | Home</title>
<meta name="description" content="Orbitly builds satellite payments infrastructure for fintech teams.">
</head><body><p>Hello</p></body></html>"""


class Site:
    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits += 1
                self.send_response(site.status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(settings):
    settings.RUNS_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    s = Site()
    yield s
    s.close()


def test_a_run_for_a_known_startup_stores_its_top_k_matches_once(settings):
    settings.RUNS_TOP_K = 5
    StartupFactory(canonical_url="https://acme.example")
    InvestorFactory.create_batch(8)
    run = match_run_submit(url="https://acme.example").run

    assert match_runs_process_batch() == 1

    run.refresh_from_db()
    assert run.status == MatchRunStatus.READY
    assert run.match_count == 5
    assert run.startup.canonical_url == "https://acme.example"
    assert run.duration_ms is not None
    assert run.started_at is not None and run.finished_at >= run.started_at
    ranks = list(StartupInvestorMatch.objects.filter(run=run).order_by("rank").values_list("rank", flat=True))
    assert ranks == [1, 2, 3, 4, 5]
    assert match_runs_process_batch() == 0


def test_an_unknown_startup_is_fetched_profiled_and_matched(site):
    InvestorFactory(sectors=["space", "fintech"])
    run = MatchRunFactory(canonical_url=site.url)

    match_runs_process_batch()

    run.refresh_from_db()
    assert run.status == MatchRunStatus.READY, run.last_error
    startup = Startup.objects.get(canonical_url=site.url)
    assert startup.name == "Orbitly"
    assert "satellite payments" in startup.description
    assert {"space", "fintech"} <= set(startup.sectors)
    assert startup.source == Startup.Source.FETCHED
    assert site.hits == 1


def test_a_page_that_cannot_be_fetched_for_now_is_retried_with_backoff_then_errors(site, settings):
    settings.OPS_BACKOFF_BASE_SECONDS = 0.01
    site.status = 503
    run = MatchRunFactory(canonical_url=site.url, max_attempts=2)

    match_runs_process_batch()
    run.refresh_from_db()
    assert run.status == MatchRunStatus.QUEUED
    assert "HTTP 503" in run.last_error

    MatchRun.objects.filter(pk=run.pk).update(available_at=Now())
    match_runs_process_batch()
    run.refresh_from_db()
    assert run.status == MatchRunStatus.ERROR
    assert run.attempts == 2
    assert "HTTP 503" in run.last_error
    assert DeadLetter.objects.filter(item_id=run.pk, reason="attempts").exists()


def test_a_page_that_is_gone_fails_at_once_with_a_readable_error(site):
    site.status = 404
    run = MatchRunFactory(canonical_url=site.url, max_attempts=3)

    match_runs_process_batch()

    run.refresh_from_db()
    assert run.status == MatchRunStatus.ERROR
    assert run.attempts == 1
    assert run.last_error.startswith("HTTP 404 from ")
    assert run.finished_at is not None


def test_a_host_that_resolves_to_loopback_is_refused_without_the_allow_list(site, settings):
    settings.RUNS_FETCH_ALLOWED_NETWORKS = []
    run = MatchRunFactory(canonical_url=site.url)

    match_runs_process_batch()

    run.refresh_from_db()
    assert run.status == MatchRunStatus.ERROR
    assert "refusing" in run.last_error
    assert site.hits == 0


def test_a_worker_that_lost_its_lease_mid_run_stores_nothing(monkeypatch):
    StartupFactory(canonical_url="https://acme.example")
    InvestorFactory.create_batch(3)
    run = match_run_submit(url="https://acme.example").run
    real_rank = services.matches_rank

    def slow_rank(**kwargs):
        # While this worker scores, its lease expires and another worker takes the run.
        MatchRun.objects.filter(pk=run.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
        runs_queue.release_expired()
        runs_queue.claim(owner="other-worker", limit=1, ttl=30)
        return real_rank(**kwargs)

    monkeypatch.setattr(services, "matches_rank", slow_rank)
    match_runs_process_batch(owner="first-worker")

    run.refresh_from_db()
    assert run.status == MatchRunStatus.PROCESSING
    assert run.lease_owner == "other-worker"
    assert StartupInvestorMatch.objects.filter(run=run).count() == 0
    events = list(QueueHistory.objects.filter(item_id=run.pk).order_by("id").values_list("event", flat=True))
    assert events == ["submit", "claim", "rescue", "claim", "lease_lost"]


def test_runs_waiting_in_a_batch_get_their_leases_renewed(settings, monkeypatch):
    settings.RUNS_LEASE_TTL_SECONDS = 3
    StartupFactory(canonical_url="https://a.example")
    StartupFactory(canonical_url="https://b.example")
    InvestorFactory()
    first = match_run_submit(url="https://a.example").run
    second = match_run_submit(url="https://b.example").run
    real_score = services.match_run_score
    expiries = {}

    def slow_score(*, lease):
        expiries[lease.id] = MatchRun.objects.get(pk=lease.id).lease_expires_at
        if lease.id == first.pk:
            import time

            time.sleep(1.2)  # longer than a third of the TTL
        return real_score(lease=lease)

    monkeypatch.setattr(services, "match_run_score", slow_score)
    assert match_runs_process_batch(limit=2) == 2

    assert expiries[second.pk] > expiries[first.pk]  # renewed before its turn
    assert set(MatchRun.objects.values_list("status", flat=True)) == {MatchRunStatus.READY}
