"""Who may touch what: anonymous callers, non-voters, pair members and other members."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from proposals.models import Conversation, Match, ProposalVoter
from proposals.voting.services import proposal_queue_refill, proposals_open, vote_cast

pytestmark = pytest.mark.django_db


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def world(members, loop_settings):
    proposal_queue_refill()
    proposals_open()
    assignments = ProposalVoter.objects.select_related("proposal", "voter").order_by("id")
    proposal = assignments[0].proposal
    voters = [a.voter for a in assignments if a.proposal_id == proposal.pk]
    outsider = next(
        m
        for m in members
        if m not in voters
        and m.pk not in (proposal.member_a_id, proposal.member_b_id)
        and not ProposalVoter.objects.filter(voter=m, proposal=proposal).exists()
    )
    approved = assignments.exclude(proposal=proposal)[0].proposal
    for a in ProposalVoter.objects.filter(proposal=approved)[:3]:
        vote_cast(user=a.voter, proposal_id=approved.public_id, choice="yes")
    match = Match.objects.get(proposal=approved)
    return {
        "proposal": proposal,
        "voter": voters[0],
        "outsider": outsider,
        "pair_member": proposal.member_a,
        "match": match,
        "conversation": Conversation.objects.get(match=match),
    }


def endpoints(world):
    p, m, c = world["proposal"].public_id, world["match"].public_id, world["conversation"].public_id
    return [
        ("get", f"/api/proposals/{p}", None),
        ("post", f"/api/proposals/{p}/vote", {"choice": "yes"}),
        ("get", f"/api/matches/{m}/", None),
        ("post", f"/api/matches/{m}/accept", {}),
        ("post", f"/api/matches/{m}/reject", {}),
        ("post", f"/api/matches/{m}/follow-all", {}),
        ("get", f"/api/conversations/{c}/messages", None),
        ("post", f"/api/conversations/{c}/messages", {"body": "hi"}),
    ]


def call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


def test_anonymous_callers_are_refused_everywhere(world):
    for method, url, body in [*endpoints(world), ("get", "/api/proposals/next", None), ("get", "/api/matches/", None)]:
        response = call(client_for(), method, url, body)
        # 401, naming the token scheme: the first authentication class is the API token's.
        assert response.status_code == 401, (url, response.status_code)
        assert response["WWW-Authenticate"] == "Token"
        assert set(response.json()) == {"error"}


@pytest.mark.parametrize("who", ["outsider", "pair_member"])
def test_a_non_voter_or_pair_member_cannot_see_or_vote_on_a_proposal_nor_touch_others_matches(world, who):
    user = world[who]
    client = client_for(user)
    expected = {"get": 404, "post": 403}
    p = world["proposal"].public_id
    assert client.get(f"/api/proposals/{p}").status_code == 404
    vote = client.post(f"/api/proposals/{p}/vote", {"choice": "yes"}, format="json")
    assert vote.status_code == expected["post"]
    assert vote.json()["error"]["code"] == "not_a_voter"
    if user.pk not in (world["match"].member_a_id, world["match"].member_b_id):
        for method, url, body in endpoints(world)[2:]:
            response = call(client, method, url, body)
            assert response.status_code == 404, (url, response.status_code)


def test_a_voter_sees_and_votes_and_a_second_identical_vote_is_harmless(world):
    client = client_for(world["voter"])
    p = world["proposal"].public_id
    detail = client.get(f"/api/proposals/{p}").json()
    assert detail["proposal_id"] == str(p) and len(detail["members"]) == 2
    assert detail["yes"] is None  # the running count is not shown to voters
    assert client.post(f"/api/proposals/{p}/vote", {"choice": "no"}, format="json").status_code == 201
    assert client.post(f"/api/proposals/{p}/vote", {"choice": "no"}, format="json").status_code == 200
    changed = client.post(f"/api/proposals/{p}/vote", {"choice": "yes"}, format="json")
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "already_voted"
    bad = client.post(f"/api/proposals/{p}/vote", {"choice": "maybe"}, format="json")
    assert bad.status_code == 400


def test_the_pair_decides_and_talks_while_others_get_404(world):
    match = world["match"]
    a, b = client_for(match.member_a), client_for(match.member_b)
    c = world["conversation"].public_id
    assert a.post(f"/api/conversations/{c}/messages", {"body": "Hello"}, format="json").status_code == 201
    thread = b.get(f"/api/conversations/{c}/messages").json()
    assert [m["body"] for m in thread["messages"]] == ["Hello"] and thread["messages"][0]["mine"] is False
    assert a.post(f"/api/matches/{match.public_id}/accept").json()["status"] == "pending"
    assert b.post(f"/api/matches/{match.public_id}/accept").json()["status"] == "accepted"
    assert [m["status"] for m in a.get("/api/matches/").json()["results"]] == ["accepted"]
    assert client_for(world["outsider"]).get("/api/matches/").json()["results"] == []


def test_next_proposal_never_leaves_a_voter_empty_handed(world):
    client = client_for(world["outsider"])
    for _ in range(8):
        body = client.get("/api/proposals/next").json()
        assert body["proposal"] is not None
        pid = body["proposal"]["proposal_id"]
        assert client.post(f"/api/proposals/{pid}/vote", {"choice": "yes"}, format="json").status_code == 201


def test_status_is_public_and_says_whether_the_loop_is_healthy(world):
    body = client_for().get("/api/proposals-status").json()
    assert set(body) >= {"healthy", "queue_depth", "active_voting", "stuck_proposals", "marks"}
