"""Two finalizer processes against real PostgreSQL: each expired proposal is finalized once."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models.functions import Now

from proposals.models import Match, Proposal, ProposalStatus
from proposals.voting.services import proposal_queue_refill, proposals_open, vote_cast
from tests.support.barrier import run_together
from tests.support.servers import child_database_url

REPO = Path(__file__).resolve().parents[2]

FINALIZER = """
import json, sys
import django
django.setup()
from proposals.voting.services import proposals_finalize_due
start_line(sys.argv[1], sys.argv[2])
done = 0
for _ in range(50):
    done += proposals_finalize_due(limit=7)
print(json.dumps(done))
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_finalizer_processes_finalize_each_expired_proposal_exactly_once(members, loop_settings, tmp_path):
    loop_settings.PROPOSALS_QUEUE_HIGH = 15
    loop_settings.PROPOSALS_VOTING_HIGH = 15
    loop_settings.PROPOSALS_VOTERS_PER_PROPOSAL = 3
    loop_settings.PROPOSALS_APPROVE_THRESHOLD = 3
    proposal_queue_refill(force=True)
    proposals_open(force=True)
    voting = list(Proposal.objects.filter(status=ProposalStatus.VOTING))
    assert len(voting) >= 10
    for i, proposal in enumerate(voting):  # every other one has a yes majority
        if i % 2 == 0:
            voter = proposal.voters.first().voter
            vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    Proposal.objects.filter(status=ProposalStatus.VOTING).update(deadline=Now() - timedelta(seconds=1))

    env = {**os.environ, "DATABASE_URL": child_database_url(), "DJANGO_SETTINGS_MODULE": "matchplatform.settings"}
    counts = run_together(script=FINALIZER, count=2, env=env, folder=tmp_path, cwd=REPO)

    assert sum(counts) == len(voting)  # together they finalized each one, and only once
    statuses = dict(Proposal.objects.filter(pk__in=[p.pk for p in voting]).values_list("pk", "status"))
    for i, proposal in enumerate(voting):
        assert statuses[proposal.pk] == ("approved" if i % 2 == 0 else "rejected")
    assert Match.objects.count() == len(voting[::2])  # one match per approval, never two
    assert not Proposal.objects.filter(status=ProposalStatus.VOTING, deadline__lte=Now()).exists()
