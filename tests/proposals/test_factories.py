"""The proposals factories build rows the services and the database accept as real ones."""

from __future__ import annotations

import pytest

from proposals.invariants import duplicate_pairs, voters_wrong
from proposals.matches.params import FeedQuery
from proposals.matches.selectors import feed_page
from proposals.models import FeedItem, Proposal
from proposals.vocab import interest_mask
from proposals.voting.services import proposals_open
from tests.factories import EventFactory, MatchFactory, MemberFactory, ProposalFactory

pytestmark = pytest.mark.django_db


def test_a_member_has_a_profile_whose_mask_matches_its_interests():
    member = MemberFactory()
    assert member.check_password("correct horse battery staple")
    assert member.profile.interest_mask == interest_mask(member.profile.interests) != 0


def test_a_proposal_orders_its_pair_and_opens_like_a_generated_one(settings):
    settings.PROPOSALS_VOTING_LOW = settings.PROPOSALS_VOTING_HIGH = 1
    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 3
    first, second = MemberFactory(), MemberFactory()
    MemberFactory.create_batch(3)
    proposal = ProposalFactory(first=second, second=first, voters_required=3)
    assert (proposal.member_a_id, proposal.member_b_id) == (first.pk, second.pk)
    assert proposals_open() == 1
    assert Proposal.objects.get(pk=proposal.pk).status == "voting"
    assert duplicate_pairs() == [] and voters_wrong() == []


def test_a_match_comes_with_its_feed_rows_for_both_members():
    event = EventFactory()
    assert event.ends_at > event.starts_at
    match = MatchFactory(event=event)
    assert FeedItem.objects.filter(match=match).count() == 2
    page = feed_page(user=match.member_a, query=FeedQuery())
    assert [str(item.match_public_id) for item in page.items] == [str(match.public_id)]
    assert match.conversation is not None
