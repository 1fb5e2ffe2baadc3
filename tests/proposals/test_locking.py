"""The one lock order for voter loads (ops/LOCKING.md), shown with real concurrent connections.

Two votes that each finalize their proposal change the loads of the same two voters X < Y:
the vote by Y releases X's seat, the vote by X releases Y's. Before the lock order, a vote
updated its voter's row first and the others' after, so one transaction held Y and asked for
X while the other held X and asked for Y. The choreography makes that happen every time: a
third connection holds X; the vote by X starts and waits for X; the vote by Y starts (the old
order takes Y first, then waits for X behind the other); the holder lets go. The old order
then deadlocks; the lock order takes X first in both, so the second simply waits its turn.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, transaction
from django.db.models import F
from django.db.models.functions import Now

from proposals.identity.services import member_create
from proposals.models import Match, Profile, Proposal, ProposalStatus, ProposalVoter, Vote, pair_hash_of
from proposals.voting.services import proposals_finalize_due, vote_cast
from tests.support.concurrency import Worker, wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)


def vote_cast_old_order(*, user: User, proposal_id: object, choice: str) -> None:
    """The load updates of vote_cast before the lock order, kept to show what the test
    catches: the voter's own row first, then every unvoted voter's row in whatever order
    the UPDATE visits them (the rest of the old function is as today's)."""
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().get(public_id=proposal_id)
        assignment = ProposalVoter.objects.get(proposal=proposal, voter=user)
        Vote.objects.create(assignment=assignment, proposal=proposal, voter=user, choice=choice)
        ProposalVoter.objects.filter(pk=assignment.pk).update(voted=True)
        Profile.objects.filter(user=user, open_assignments__gt=0).update(open_assignments=F("open_assignments") - 1)
        Proposal.objects.filter(pk=proposal.pk).update(yes_count=F("yes_count") + 1)
        Proposal.objects.filter(pk=proposal.pk, status=ProposalStatus.VOTING).update(
            status=ProposalStatus.APPROVED, finalized_at=Now()
        )
        unvoted = ProposalVoter.objects.filter(proposal=proposal, voted=False).values_list("voter_id", flat=True)
        Profile.objects.filter(user_id__in=list(unvoted), open_assignments__gt=0).update(
            open_assignments=F("open_assignments") - 1
        )


def _two_voters_on_two_proposals() -> tuple[User, User, Proposal, Proposal]:
    """X < Y, each an assigned voter on both proposals (load 2), one yes approves."""
    x, y = sorted((member_create(username="voter-x"), member_create(username="voter-y")), key=lambda u: u.pk)
    pair_members = [member_create(username=f"pair-{i}") for i in range(4)]
    proposals = []
    for a, b in (pair_members[0:2], pair_members[2:4]):
        proposal = Proposal.objects.create(
            member_a=a,
            member_b=b,
            pair_hash=pair_hash_of(a.pk, b.pk),
            compatibility=0.5,
            status=ProposalStatus.VOTING,
            voters_required=2,
            approve_threshold=1,
            voting_started_at=Now(),
            deadline=Now() + timedelta(hours=1),
        )
        for voter in (x, y):
            ProposalVoter.objects.create(proposal=proposal, voter=voter, member_a_id_copy=a.pk, member_b_id_copy=b.pk)
        proposals.append(proposal)
    Profile.objects.filter(user__in=(x, y)).update(open_assignments=2)
    return x, y, proposals[0], proposals[1]


def _race(cast: Callable[..., object]) -> list[BaseException | None]:
    """The choreography of the module docstring; the two votes' errors (None: it committed)."""
    x, y, first, second = _two_voters_on_two_proposals()
    by_x = Worker(lambda: cast(user=x, proposal_id=second.public_id, choice="yes"))
    by_y = Worker(lambda: cast(user=y, proposal_id=first.public_id, choice="yes"))
    for worker in (by_x, by_y):
        worker.start()
        assert worker.ready.wait(timeout=30)
    try:
        with transaction.atomic():
            Profile.objects.select_for_update(no_key=True).filter(user=x).get()
            by_x.go.set()
            wait_until_blocked(by_x.pid)  # by X waits for X (both orders take the voter's row...)
            by_y.go.set()
            wait_until_blocked(by_y.pid)  # ...old: by Y holds Y and waits for X; new: waits for X
    finally:
        by_x.go.set()
        by_y.go.set()
        by_x.join(timeout=60)
        by_y.join(timeout=60)
    assert not by_x.is_alive() and not by_y.is_alive()
    return [by_x.error, by_y.error]


def test_the_old_order_deadlocks_two_finalizing_votes():
    errors = _race(vote_cast_old_order)

    failed = [e for e in errors if e is not None]
    assert len(failed) == 1  # PostgreSQL broke the cycle by aborting one of the two
    assert isinstance(failed[0], OperationalError)
    assert "deadlock detected" in str(failed[0])


def test_two_finalizing_votes_take_the_loads_in_one_order_and_both_commit():
    errors = _race(vote_cast)

    assert errors == [None, None]
    assert Proposal.objects.filter(status=ProposalStatus.APPROVED).count() == 2
    assert Match.objects.count() == 2
    # Each voter voted on one proposal and had the other's seat released: 2 - 1 - 1.
    assert list(Profile.objects.filter(open_assignments__gt=0).values_list("user_id", flat=True)) == []


def test_a_finalizing_vote_and_the_deadline_finalizer_take_the_loads_in_one_order():
    """The finalizer releases X and Y (its proposal's unvoted seats) while a vote by Y
    finalizes the other proposal and releases X: both take X first, so both commit."""
    x, y, first, second = _two_voters_on_two_proposals()
    Proposal.objects.filter(pk=second.pk).update(deadline=Now() - timedelta(seconds=1))
    finalizer = Worker(proposals_finalize_due)
    by_y = Worker(lambda: vote_cast(user=y, proposal_id=first.public_id, choice="yes"))
    for worker in (finalizer, by_y):
        worker.start()
        assert worker.ready.wait(timeout=30)
    try:
        with transaction.atomic():
            Profile.objects.select_for_update(no_key=True).filter(user=x).get()
            finalizer.go.set()
            wait_until_blocked(finalizer.pid)
            by_y.go.set()
            wait_until_blocked(by_y.pid)
    finally:
        finalizer.go.set()
        by_y.go.set()
        finalizer.join(timeout=60)
        by_y.join(timeout=60)

    assert (finalizer.error, by_y.error) == (None, None)
    assert set(Proposal.objects.values_list("status", flat=True)) == {"approved", "rejected"}
    assert list(Profile.objects.filter(open_assignments__gt=0).values_list("user_id", flat=True)) == []
