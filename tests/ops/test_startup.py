"""A fresh platform is healthy at once: beat runs its first ticks (lease sweep, the proposals
loop's refill, its metrics, the invariants) as it starts, and the demo community is large
enough for the loop to hold its marks. Before, `make run` answered "degraded" (the queue could
never reach 50 with 61 members) and waited a minute for its first invariant results."""

from __future__ import annotations

import pytest
from celery.signals import beat_init
from django.core.management import call_command

import ops.invariants_builtin
from matchplatform.celery import app
from ops.health import health_report
from ops.models import InvariantResult

pytestmark = pytest.mark.django_db


class _Beat:
    """What beat_init sends as its sender: the beat service, which knows its app."""

    app = app


@pytest.fixture
def quiet_server(monkeypatch):
    # The test server's connection count is every other client's too; a fresh platform's own
    # figure is a handful of connections.
    monkeypatch.setattr(ops.invariants_builtin, "database_connections", lambda: (5, 100))


def test_a_freshly_seeded_platform_is_ok_once_beat_has_started(client, quiet_server, settings):
    call_command("seed_demo", "--if-empty", "--investors", "300", "--startups", "3", "--no-progress")
    call_command("seed_members", "--if-empty", "--no-progress")
    assert InvariantResult.objects.count() == 0

    beat_init.send(sender=_Beat())

    # The invariants ran at start and were stored: health reads them, not a live run.
    assert InvariantResult.objects.exists()
    report = health_report()
    states = {i["name"]: (i["state"], i["value"], i["detail"]) for i in report["invariants"]}
    assert report["status"] == "ok", {k: v for k, v in states.items() if v[0] not in ("ok", "insufficient_data")}
    assert states["proposals.queue_depth"][1] >= settings.PROPOSALS_QUEUE_LOW == 50
    assert states["proposals.active_voting"][1] >= settings.PROPOSALS_VOTING_LOW == 10
    response = client.get("/api/health")
    assert (response.status_code, response.json()["status"]) == (200, "ok")


def test_the_community_holds_the_loops_marks_through_many_ticks(quiet_server, settings):
    from proposals.models import Proposal, ProposalStatus
    from proposals.tasks import tick  # what beat runs every 5 s, called here in-process

    call_command("seed_members", "--if-empty", "--no-progress")
    tick()
    for _ in range(8):
        # Voting closes: a third of the open proposals are rejected, freeing their members.
        voting = list(Proposal.objects.filter(status=ProposalStatus.VOTING).values_list("pk", flat=True))
        Proposal.objects.filter(pk__in=voting[: len(voting) // 3]).update(status=ProposalStatus.REJECTED)
        # One tick puts both back at their marks: it refills, opens, and refills what it took.
        tick()
        assert Proposal.objects.filter(status=ProposalStatus.QUEUED).count() >= settings.PROPOSALS_QUEUE_LOW
        assert Proposal.objects.filter(status=ProposalStatus.VOTING).count() >= settings.PROPOSALS_VOTING_LOW


def test_an_older_demo_community_is_topped_up_to_the_size_the_loop_needs(settings):
    from proposals.management.commands.seed_members import community_size_needed
    from proposals.models import Profile

    call_command("seed_members", "--members", "20", "--no-progress")
    assert Profile.objects.filter(is_active=True).count() == 21
    call_command("seed_members", "--if-empty", "--no-progress")
    assert Profile.objects.filter(is_active=True).count() == community_size_needed() + 1 == 185


def test_a_startup_task_that_fails_does_not_stop_the_others(monkeypatch, settings):
    from ops.signals import beat_startup_tasks_run

    settings.OPS_BEAT_STARTUP_TASKS = ["no.such_task", "ops.invariants_check"]
    results = beat_startup_tasks_run(app=app)
    assert set(results) == {"ops.invariants_check"}
    assert InvariantResult.objects.exists()
