"""The continuous loop: refill, open, vote, finalize, match, converse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.db.models.functions import Now

from matchplatform.exceptions import Conflict, Forbidden, NotFound
from ops.invariants import invariant_evaluate, invariants_all
from proposals.matches.services import match_decide, matches_expire, message_post
from proposals.models import (
    OPEN_PAIR_STATUSES,
    Conversation,
    Match,
    Profile,
    Proposal,
    ProposalStatus,
    ProposalVoter,
    pair_hash_of,
)
from proposals.voting.services import (
    proposal_open_for_voter,
    proposal_queue_refill,
    proposals_finalize_due,
    proposals_open,
    vote_cast,
)
from tests.factories import ProposalFactory

pytestmark = pytest.mark.django_db


def open_one(members, loop_settings):
    proposal_queue_refill()
    proposals_open()
    return Proposal.objects.filter(status=ProposalStatus.VOTING).order_by("id").first()


def voters_of(proposal):
    return [a.voter for a in ProposalVoter.objects.filter(proposal=proposal).select_related("voter").order_by("id")]


def test_refill_fills_the_queue_to_its_high_mark_with_distinct_pairs_and_members(members, loop_settings):
    assert proposal_queue_refill() == 9
    queued = Proposal.objects.filter(status=ProposalStatus.QUEUED)
    assert queued.count() == 9
    assert queued.values("pair_hash").distinct().count() == 9
    people = [p.member_a_id for p in queued] + [p.member_b_id for p in queued]
    assert len(people) == len(set(people))  # nobody is in two open proposals
    assert all(p.member_a_id < p.member_b_id for p in queued)
    assert proposal_queue_refill() == 0  # at the high mark, above the low one: nothing to do


def test_the_database_refuses_a_second_open_proposal_for_a_pair(members):
    a, b = members[0], members[1]
    ProposalFactory(first=a, second=b)
    with pytest.raises(IntegrityError), transaction.atomic():
        Proposal.objects.create(
            member_a=a,
            member_b=b,
            pair_hash=pair_hash_of(b.pk, a.pk),
            compatibility=0.5,
            status="voting",
            deadline=Now(),
        )


def test_a_rejected_pair_comes_back_only_after_the_cool_down(loop_settings, db):
    from proposals.identity.services import member_create

    a = member_create(username="a", interests=["ai"])
    b = member_create(username="b", interests=["ai"])
    ProposalFactory(
        first=a,
        second=b,
        compatibility=1,
        status=ProposalStatus.REJECTED,
        finalized_at=Now() - timedelta(days=29),
    )
    assert proposal_queue_refill() == 0
    Proposal.objects.update(finalized_at=Now() - timedelta(days=31))
    assert proposal_queue_refill() == 1


def test_opening_assigns_n_least_loaded_voters_none_from_the_pair(members, loop_settings):
    Profile.objects.filter(user=members[0]).update(open_assignments=50)  # the busiest member
    proposal_queue_refill()
    assert proposals_open() == 4
    voting = Proposal.objects.filter(status=ProposalStatus.VOTING)
    assert voting.count() == 4
    for proposal in voting:
        voters = voters_of(proposal)
        assert len(voters) == 5
        assert proposal.member_a not in voters and proposal.member_b not in voters
        assert proposal.deadline is not None
    assert not ProposalVoter.objects.filter(voter=members[0]).exists()
    loads = Profile.objects.exclude(user=members[0]).values_list("open_assignments", flat=True)
    assert max(loads) - min(loads) <= 1  # spread evenly
    assert proposals_open() == 0  # at the high mark


def test_only_assigned_voters_vote_once_and_the_same_vote_twice_is_harmless(members, loop_settings):
    proposal = open_one(members, loop_settings)
    voter = voters_of(proposal)[0]
    outsider = next(
        m for m in members if m not in voters_of(proposal) and m.pk not in (proposal.member_a_id, proposal.member_b_id)
    )

    with pytest.raises(Forbidden):
        vote_cast(user=outsider, proposal_id=proposal.public_id, choice="yes")
    with pytest.raises(Forbidden):
        vote_cast(user=proposal.member_a, proposal_id=proposal.public_id, choice="yes")
    with pytest.raises(NotFound):
        vote_cast(user=voter, proposal_id="00000000-0000-0000-0000-000000000000", choice="yes")

    first = vote_cast(user=voter, proposal_id=proposal.public_id, choice="no")
    again = vote_cast(user=voter, proposal_id=proposal.public_id, choice="no")
    assert first.created and not again.created and again.vote.pk == first.vote.pk
    with pytest.raises(Conflict):
        vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    proposal.refresh_from_db()
    assert (proposal.yes_count, proposal.no_count) == (0, 1)
    assert Profile.objects.get(user=voter).open_assignments == 0


def test_reaching_the_threshold_approves_at_once_and_opens_a_conversation(members, loop_settings):
    proposal = open_one(members, loop_settings)
    voters = voters_of(proposal)
    for voter in voters[:3]:
        result = vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    assert result.proposal.status == ProposalStatus.APPROVED
    match = Match.objects.get(proposal=proposal)
    assert match.status == Match.Status.PENDING
    assert Conversation.objects.filter(match=match, closed_at__isnull=True).exists()
    with pytest.raises(Conflict):  # closed for the rest
        vote_cast(user=voters[3], proposal_id=proposal.public_id, choice="yes")
    # their unvoted assignments no longer count as load
    assert Profile.objects.get(user=voters[3]).open_assignments == 0


@pytest.mark.parametrize(("yes", "no", "status"), [(2, 1, "approved"), (1, 1, "rejected"), (0, 0, "rejected")])
def test_at_the_deadline_more_yes_than_no_approves_otherwise_rejects(members, loop_settings, yes, no, status):
    proposal = open_one(members, loop_settings)
    voters = voters_of(proposal)
    for voter in voters[:yes]:
        vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    for voter in voters[yes : yes + no]:
        vote_cast(user=voter, proposal_id=proposal.public_id, choice="no")
    assert proposals_finalize_due() == 0  # not due yet
    Proposal.objects.filter(pk=proposal.pk).update(deadline=Now() - timedelta(seconds=1))
    with pytest.raises(Conflict):
        vote_cast(user=voters[-1], proposal_id=proposal.public_id, choice="yes")
    assert proposals_finalize_due() >= 1
    proposal.refresh_from_db()
    assert proposal.status == status
    assert Match.objects.filter(proposal=proposal).exists() == (status == "approved")
    assert proposals_finalize_due() == 0


def test_a_match_is_accepted_by_both_rejected_by_either_and_expires_if_undecided(members, loop_settings):
    matches = []
    for _ in range(3):
        proposal = open_one(members, loop_settings)
        for voter in voters_of(proposal)[:3]:
            vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
        matches.append(Match.objects.get(proposal=proposal))
    accepted, rejected, expired = matches

    match_decide(user=accepted.member_a, match_id=accepted.public_id, decision="accept")
    assert match_decide(user=accepted.member_b, match_id=accepted.public_id, decision="accept").status == "accepted"
    assert match_decide(user=rejected.member_b, match_id=rejected.public_id, decision="reject").status == "rejected"
    assert Conversation.objects.get(match=rejected).closed_at is not None
    with pytest.raises(NotFound):  # not theirs
        match_decide(user=accepted.member_a, match_id=rejected.public_id, decision="accept")
    with pytest.raises(Conflict):
        match_decide(user=rejected.member_a, match_id=rejected.public_id, decision="accept")

    Match.objects.filter(pk=expired.pk).update(expires_at=Now() - timedelta(seconds=1))
    assert matches_expire() == 1
    expired.refresh_from_db()
    assert expired.status == "expired"
    assert Conversation.objects.get(match=expired).closed_at is not None


def test_only_the_two_members_talk_and_not_once_closed(members, loop_settings):
    proposal = open_one(members, loop_settings)
    for voter in voters_of(proposal)[:3]:
        vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
    match = Match.objects.get(proposal=proposal)
    conversation = Conversation.objects.get(match=match)
    message_post(user=match.member_a, conversation_id=conversation.public_id, body="Hello!")
    with pytest.raises(NotFound):
        message_post(user=voters_of(proposal)[0], conversation_id=conversation.public_id, body="hi")
    match_decide(user=match.member_b, match_id=match.public_id, decision="reject")
    with pytest.raises(Conflict):
        message_post(user=match.member_a, conversation_id=conversation.public_id, body="still there?")


def test_a_voter_with_nothing_to_vote_on_gets_a_proposal_opened_for_them(members, loop_settings):
    me = members[-1]
    for _ in range(5):
        proposal = proposal_open_for_voter(user=me)
        assert proposal is not None
        assert me in voters_of(proposal)
        assert me.pk not in (proposal.member_a_id, proposal.member_b_id)
        vote_cast(user=me, proposal_id=proposal.public_id, choice="yes")


def test_the_loop_keeps_every_invariant(members, loop_settings):
    for _ in range(3):
        proposal_queue_refill()
        proposals_open()
        for proposal in Proposal.objects.filter(status=ProposalStatus.VOTING):
            for voter in voters_of(proposal)[:2]:
                vote_cast(user=voter, proposal_id=proposal.public_id, choice="yes")
        Proposal.objects.filter(status=ProposalStatus.VOTING).update(deadline=Now() - timedelta(seconds=1))
        proposals_finalize_due()
    assert Proposal.objects.filter(status=ProposalStatus.APPROVED).count() >= 4
    open_pairs = Proposal.objects.filter(status__in=OPEN_PAIR_STATUSES).values("pair_hash").annotate(n=Count("id"))
    assert all(row["n"] == 1 for row in open_pairs)
    for invariant in invariants_all():
        if invariant.app == "proposals":
            outcome = invariant_evaluate(invariant)
            assert outcome.state != "error", outcome
            if invariant.kind == "rows":
                assert outcome.state == "ok", outcome


def test_spent_and_long_expired_nonces_are_pruned_and_live_ones_kept():
    from proposals.identity.services import wallet_nonces_prune
    from proposals.models import WalletNonce

    live = WalletNonce.objects.create(nonce="live0001", expires_at=Now() + timedelta(minutes=5))
    WalletNonce.objects.create(nonce="spent001", expires_at=Now() + timedelta(minutes=5), used_at=Now())
    WalletNonce.objects.create(nonce="stale001", expires_at=Now() - timedelta(days=2))
    recent = WalletNonce.objects.create(nonce="recent01", expires_at=Now() - timedelta(minutes=1))
    assert wallet_nonces_prune() == 2
    assert set(WalletNonce.objects.values_list("pk", flat=True)) == {live.pk, recent.pk}


def test_metrics_never_recorded_are_critical_only_once_the_loop_has_run_ten_minutes(members, loop_settings):
    from proposals.invariants import metrics_age
    from proposals.models import SystemMetric
    from proposals.voting.services import metrics_record

    def state():
        (invariant,) = [i for i in invariants_all() if i.name == "proposals.metrics_age_minutes"]
        return invariant_evaluate(invariant)

    assert not SystemMetric.objects.exists()
    assert state().state == "ok" and metrics_age() == 0.0  # the loop has not started
    proposal_queue_refill()
    assert state().state == "ok"  # just started: beat records the first metrics within a minute
    Proposal.objects.update(created_at=Now() - timedelta(minutes=11))
    outcome = state()
    assert outcome.state == "critical" and 11 <= outcome.value < 12, outcome
    metrics_record()
    assert state().state == "ok"
