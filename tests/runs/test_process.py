"""The worker's service: claim, fetch when needed, score, store once, ack; or retry and fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now

import runs.services as services
from ops.models import DeadLetter, QueueHistory
from runs.models import MatchRun, MatchRunStatus, Startup, StartupInvestorMatch
from runs.queue import runs_queue
from runs.services import match_run_submit, match_runs_process_batch
from tests.factories import InvestorFactory, MatchRunFactory, StartupFactory

pytestmark = pytest.mark.django_db(transaction=True)


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


def test_a_run_that_recovers_after_a_retry_shows_no_error(site, settings):
    settings.OPS_BACKOFF_BASE_SECONDS = 0.01
    InvestorFactory(sectors=["space"])
    site.status = 503
    run = MatchRunFactory(canonical_url=site.url, max_attempts=3)

    match_runs_process_batch()
    run.refresh_from_db()
    assert (run.status, run.error_code) == (MatchRunStatus.QUEUED, "unavailable")
    assert run.error_message == f"The page at {site.url} answered HTTP 503."

    site.status = 200
    MatchRun.objects.filter(pk=run.pk).update(available_at=Now())
    match_runs_process_batch()
    run.refresh_from_db()
    assert run.status == MatchRunStatus.READY
    assert (run.last_error, run.error_code, run.error_message) == ("", "", "")


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


def test_every_lease_a_batch_holds_is_renewed_the_scored_ones_too(settings, monkeypatch):
    settings.RUNS_LEASE_TTL_SECONDS = 3
    for name in "abc":
        StartupFactory(canonical_url=f"https://{name}.example")
    InvestorFactory()
    first, second, third = (match_run_submit(url=f"https://{name}.example").run for name in "abc")
    real_score = services.match_run_score
    seen: dict[str, dict[int, object]] = {}

    def slow_score(*, lease):
        seen[f"before {lease.id}"] = dict(MatchRun.objects.values_list("pk", "lease_expires_at"))
        if lease.id == second.pk:
            import time

            time.sleep(1.2)  # longer than a third of the TTL, as a slow fetch would be
        return real_score(lease=lease)

    monkeypatch.setattr(services, "match_run_score", slow_score)
    assert match_runs_process_batch(limit=3) == 3

    before_second, before_third = seen[f"before {second.pk}"], seen[f"before {third.pk}"]
    assert before_third[first.pk] > before_second[first.pk]  # scored, waiting to be stored: renewed
    assert before_third[third.pk] > before_second[third.pk]  # waiting its turn: renewed
    assert set(MatchRun.objects.values_list("status", flat=True)) == {MatchRunStatus.READY}


def test_one_run_that_cannot_be_stored_fails_alone_not_its_whole_batch(settings, monkeypatch):
    settings.RUNS_MAX_ATTEMPTS = 1
    for name in "abc":
        StartupFactory(canonical_url=f"https://{name}.example")
    InvestorFactory.create_batch(3)
    runs = [match_run_submit(url=f"https://{name}.example").run for name in "abc"]
    real_rank = services.matches_rank
    calls = []

    def rank(**kwargs):
        ranked = real_rank(**kwargs)
        calls.append(1)
        if len(calls) == 2:  # the second run ranks an investor that no longer exists
            ranked[0] = services.ScoredInvestor(investor_id=987654321, score=1.0, rank=1, reasons=[])
        return ranked

    monkeypatch.setattr(services, "matches_rank", rank)
    match_runs_process_batch(limit=3)

    statuses = {run.pk: MatchRun.objects.get(pk=run.pk).status for run in runs}
    assert statuses == {runs[0].pk: "ready", runs[1].pk: "error", runs[2].pk: "ready"}
    assert StartupInvestorMatch.objects.filter(run=runs[1]).count() == 0
    assert MatchRun.objects.get(pk=runs[1].pk).last_error == "could not store the run's matches"
