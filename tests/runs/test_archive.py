"""Retention: finished runs older than the cut-off move to the archive, whole, in one go."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models.functions import Now

from ops.models import DeadLetter, QueueHistory
from runs.models import MatchRun, MatchRunArchive, MatchRunStatus, StartupInvestorMatch
from runs.queue import runs_queue
from runs.services import match_run_submit, match_runs_archive, match_runs_process_batch
from tests.factories import InvestorFactory, MatchRunFactory, StartupFactory

pytestmark = pytest.mark.django_db


def age(run, days):
    MatchRun.objects.filter(pk=run.pk).update(created_at=Now() - timedelta(days=days))


def test_old_finished_runs_are_archived_with_their_matches_and_history(settings):
    settings.RUNS_TOP_K = 3
    StartupFactory(canonical_url="https://old.example")
    InvestorFactory.create_batch(4)
    old = match_run_submit(url="https://old.example").run
    match_runs_process_batch()
    age(old, 91)
    recent = MatchRunFactory(status=MatchRunStatus.READY)
    active_old = MatchRunFactory()
    age(active_old, 200)

    assert match_runs_archive() == 1

    assert not MatchRun.objects.filter(pk=old.pk).exists()
    assert not StartupInvestorMatch.objects.filter(run_id=old.pk).exists()
    assert not QueueHistory.objects.filter(item_id=old.pk, queue="runs.matchrun").exists()
    archived = MatchRunArchive.objects.get(run_id=old.run_id)
    assert archived.status == "ready"
    assert [m["rank"] for m in archived.payload["matches"]] == [1, 2, 3]
    assert [h["event"] for h in archived.payload["history"]] == ["submit", "claim", "ack"]
    assert MatchRun.objects.filter(pk__in=[recent.pk, active_old.pk]).count() == 2  # untouched
    assert match_runs_archive() == 0


def dead_run(url: str) -> MatchRun:
    run = match_run_submit(url=url).run
    (lease,) = runs_queue.claim(owner="w-1", limit=1, ttl=30)
    runs_queue.fail(lease=lease, error="the page is gone", retryable=False)
    return MatchRun.objects.get(pk=run.pk)


def test_a_dead_run_is_archived_with_its_dead_letter():
    run = dead_run("https://gone.example")
    assert run.status == MatchRunStatus.ERROR
    letter = DeadLetter.objects.get(queue=runs_queue.label, item_id=run.pk)
    age(run, 100)

    assert match_runs_archive() == 1

    payload = MatchRunArchive.objects.get(run_id=run.run_id).payload
    assert [h["event"] for h in payload["history"]] == ["submit", "claim", "dead"]
    assert [(d["id"], d["reason"], d["last_error"]) for d in payload["dead_letters"]] == [
        (letter.pk, "permanent", "the page is gone")
    ]
    assert not DeadLetter.objects.filter(pk=letter.pk).exists()
    assert not QueueHistory.objects.filter(queue=runs_queue.label, item_id=run.pk).exists()


def test_archiving_is_all_or_nothing(monkeypatch):
    run = dead_run("https://broken-archive.example")
    age(run, 100)

    def broken(*args, **kwargs):
        raise RuntimeError("archive table unavailable")

    monkeypatch.setattr(MatchRunArchive.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        match_runs_archive()
    assert MatchRun.objects.filter(pk=run.pk).exists()  # nothing deleted without being archived
    assert QueueHistory.objects.filter(queue=runs_queue.label, item_id=run.pk).count() == 3
    assert DeadLetter.objects.filter(queue=runs_queue.label, item_id=run.pk).count() == 1


def test_the_archive_command_takes_a_cut_off(capsys):
    run = MatchRunFactory(status=MatchRunStatus.READY)
    age(run, 10)
    call_command("archive_runs", "--older-than-days", "30")
    assert MatchRun.objects.filter(pk=run.pk).exists()
    call_command("archive_runs", "--older-than-days", "5")
    assert not MatchRun.objects.filter(pk=run.pk).exists()
    assert "archived 1 run(s)" in capsys.readouterr().out
