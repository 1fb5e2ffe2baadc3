"""Every admin page operators use renders, with data in it."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from ops.models import DeadLetter
from ops.services import heartbeat_beat, invariants_check_and_store
from runs.models import MatchRun, MatchRunStatus
from runs.queue import runs_queue
from runs.services import match_run_submit, match_runs_process_batch
from tests.factories import InvestorFactory, MatchRunFactory, StartupFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def data():
    StartupFactory(canonical_url="https://acme.example")
    InvestorFactory.create_batch(3)
    match_run_submit(url="https://acme.example")
    match_runs_process_batch()
    dead = MatchRunFactory(max_attempts=1)
    (lease,) = runs_queue.claim(owner="w", limit=1, ttl=30)
    runs_queue.fail(lease=lease, error="boom")
    heartbeat_beat(queues=["celery"])
    invariants_check_and_store()
    return dead


def test_every_registered_admin_changelist_and_change_page_renders(operator, data):
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        changelist = operator.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert changelist.status_code == 200, info
        obj = model_admin.get_queryset(changelist.wsgi_request).first()
        if obj is not None:
            assert operator.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk])).status_code == 200, info


def test_operators_requeue_dead_letters_from_the_admin(operator, data):
    letter = DeadLetter.objects.get(item_id=data.pk)
    response = operator.post(
        reverse("admin:ops_deadletter_changelist"),
        {"action": "requeue", "_selected_action": [letter.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Requeued 1 row(s)." in response.content.decode()
    assert MatchRun.objects.get(pk=data.pk).status == MatchRunStatus.QUEUED


def test_editing_an_investor_in_the_admin_keeps_its_masks_and_the_corpus_version_in_step(operator):
    from runs.engine import corpus_version_read
    from runs.models import Investor
    from runs.vocab import sector_mask

    investor = InvestorFactory(sectors=["ai"])
    version = corpus_version_read()
    url = reverse("admin:runs_investor_change", args=[investor.pk])
    form = operator.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(sectors='["space", "travel"]', stages='["seed"]', countries="[]")
    response = operator.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    investor = Investor.objects.get(pk=investor.pk)
    assert investor.sector_mask == sector_mask(["space", "travel"])
    assert corpus_version_read() == version + 1
    assert operator.get(reverse("admin:runs_investor_delete", args=[investor.pk])).status_code == 403


def test_operators_finalize_a_voting_proposal_from_the_admin(operator, settings):
    from proposals.identity.services import member_create
    from proposals.models import Match, Proposal, ProposalStatus
    from proposals.voting.services import proposal_queue_refill, proposals_open, vote_cast

    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 3
    for i in range(8):
        member_create(username=f"v{i}", interests=["ai", "music"])
    proposal_queue_refill(force=True)
    proposals_open(force=True)
    proposal = Proposal.objects.filter(status=ProposalStatus.VOTING).first()
    vote_cast(user=proposal.voters.first().voter, proposal_id=proposal.public_id, choice="yes")
    assert operator.get(reverse("admin:proposals_proposal_change", args=[proposal.pk])).status_code == 200
    assert operator.get(reverse("admin:proposals_queuedproposal_changelist")).status_code == 200
    response = operator.post(
        reverse("admin:proposals_proposal_changelist"),
        {"action": "finalize_now", "_selected_action": [proposal.pk]},
        follow=True,
    )
    assert "Finalized 1 proposal(s)." in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED  # 1 yes, 0 no
    assert Match.objects.filter(proposal=proposal).exists()
