from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import InvalidInput
from proposals.feed import (
    SORTS,
    SOURCES,
    STATUSES,
    FeedPage,
    event_exists,
    feed_item_for,
    feed_page,
    feed_query_parse,
    follow_all,
    item_data,
    mutual_connections,
)
from proposals.invariants import active_voting, proposals_healthy, queue_depth, stuck_proposals
from proposals.models import Profile, Proposal
from proposals.selectors import messages_for, metrics_latest, proposal_for_viewer, proposal_next_for_voter
from proposals.services import (
    conversation_for,
    match_decide,
    message_post,
    profile_update,
    proposal_open_for_voter,
    vote_cast,
)
from proposals.vocab import INTERESTS


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


class ProfileSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=80, required=False)
    bio = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    interests = serializers.ListField(
        child=serializers.ChoiceField(choices=INTERESTS), required=False, max_length=len(INTERESTS)
    )
    privacy = serializers.ChoiceField(choices=Profile.Privacy.choices, required=False)


def profile_public(profile: Profile | None) -> dict[str, Any] | None:
    """What a voter may see of a member: a private member shows only their name."""
    if profile is None:
        return None
    data: dict[str, Any] = {"display_name": profile.display_name, "privacy": profile.privacy}
    if profile.privacy != Profile.Privacy.PRIVATE:
        data.update(bio=profile.bio, interests=profile.interests)
    return data


def proposal_data(proposal: Proposal, *, viewer: User) -> dict[str, Any]:
    left = None
    if proposal.deadline is not None:
        left = max(int((proposal.deadline - timezone.now()).total_seconds()), 0)
    return {
        "proposal_id": str(proposal.public_id),
        "status": proposal.status,
        "compatibility": proposal.compatibility,
        "members": [
            profile_public(getattr(proposal.member_a, "profile", None)),
            profile_public(getattr(proposal.member_b, "profile", None)),
        ],
        "deadline": proposal.deadline,
        "seconds_left": left,
        "yes": proposal.yes_count if viewer.is_staff else None,
        "no": proposal.no_count if viewer.is_staff else None,
    }


class MyProfileApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="My profile", responses=dict[str, Any])
    def get(self, request: Request) -> Response:
        profile = profile_update(user=_user(request))
        return Response(self._out(profile))

    @extend_schema(summary="Update my profile", request=ProfileSerializer, responses=dict[str, Any])
    def patch(self, request: Request) -> Response:
        body = ProfileSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile = profile_update(user=_user(request), **body.validated_data)
        return Response(self._out(profile))

    @staticmethod
    def _out(profile: Profile) -> dict[str, Any]:
        return {
            "display_name": profile.display_name,
            "bio": profile.bio,
            "interests": profile.interests,
            "privacy": profile.privacy,
            "wallet_address": profile.wallet_address,
            "open_assignments": profile.open_assignments,
        }


class NextProposalApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="My next proposal to vote on", responses=dict[str, Any])
    def get(self, request: Request) -> Response:
        user = _user(request)
        proposal = proposal_next_for_voter(user=user) or proposal_open_for_voter(user=user)
        if proposal is None:
            return Response({"proposal": None, "reason": "There is nothing to vote on right now."})
        proposal = proposal_for_viewer(user=user, proposal_id=proposal.public_id)
        return Response({"proposal": proposal_data(proposal, viewer=user)})


class ProposalDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="A proposal (its voters and staff only)", responses=dict[str, Any])
    def get(self, request: Request, proposal_id: str) -> Response:
        user = _user(request)
        return Response(proposal_data(proposal_for_viewer(user=user, proposal_id=proposal_id), viewer=user))


class VoteSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=["yes", "no"])


class VoteApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="Vote on a proposal", request=VoteSerializer, responses=dict[str, Any])
    def post(self, request: Request, proposal_id: str) -> Response:
        body = VoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = vote_cast(user=_user(request), proposal_id=proposal_id, choice=body.validated_data["choice"])
        return Response(
            {
                "proposal_id": str(result.proposal.public_id),
                "choice": result.vote.choice,
                "status": result.proposal.status,
            },
            status=201 if result.created else 200,
        )


def _feed_out(page: FeedPage) -> list[dict[str, Any]]:
    return [item_data(item, now=page.now) for item in page.items]


class MatchFeedApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="matches_feed",
        summary="My matches feed",
        description=(
            "The signed-in member's matches. Filters: `status` (pending, accepted, rejected, expired; "
            "repeat it or separate with commas), `event` (an event id), `source` (proposal, event), "
            "`min_compatibility` (0 to 1). Sort: `newest` (default), `compatibility`, `expiring_soon` "
            "(open pending matches first, soonest deadline first; then the rest, newest first). "
            "Paging by cursor: pass `next_cursor` back as `cursor`; `page_size` 1 to 100 (default 20)."
        ),
        parameters=[
            OpenApiParameter("status", str, many=True, enum=list(STATUSES)),
            OpenApiParameter("event", int),
            OpenApiParameter("source", str, enum=list(SOURCES)),
            OpenApiParameter("min_compatibility", float),
            OpenApiParameter("sort", str, enum=list(SORTS)),
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=dict[str, Any],
    )
    def get(self, request: Request) -> Response:
        user = _user(request)
        query = feed_query_parse(request.query_params)
        if query.event_id is not None and not event_exists(query.event_id):
            raise InvalidInput(
                f"There is no event {query.event_id}.", code="invalid_parameter", fields={"event": ["No such event."]}
            )
        page = feed_page(user=user, query=query)
        return Response(
            {
                "results": _feed_out(page),
                "next_cursor": page.next_cursor,
                "page_size": query.page_size,
                "sort": query.sort,
            }
        )


class MatchDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="match_detail", summary="One of my matches", responses=dict[str, Any])
    def get(self, request: Request, match_id: str) -> Response:
        user = _user(request)
        return Response(_feed_out(feed_item_for(user=user, match_id=match_id))[0])


class MatchAnswerApi(APIView):
    """POST /api/matches/<id>/accept and /reject. A decided or expired match answers 409."""

    permission_classes = [IsAuthenticated]
    decision = "accept"

    @extend_schema(summary="Answer a match (accept or reject)", request=None, responses=dict[str, Any])
    def post(self, request: Request, match_id: str) -> Response:
        user = _user(request)
        match_decide(user=user, match_id=match_id, decision=self.decision)
        return Response(_feed_out(feed_item_for(user=user, match_id=match_id))[0])


class MatchFollowAllApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Follow every connection of the other member of an accepted match",
        request=None,
        responses=dict[str, Any],
    )
    def post(self, request: Request, match_id: str) -> Response:
        result = follow_all(user=_user(request), match_id=match_id)
        return Response(
            {
                "followed": result.followed,
                "already_followed": result.already_followed,
                "skipped_privacy": result.skipped_privacy,
                "network_visible": result.network_visible,
            }
        )


class MutualConnectionsApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Members you and another member are both connected to",
        parameters=[OpenApiParameter("member", int, required=True)],
        responses=dict[str, Any],
    )
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"member"})
        if unknown:
            raise InvalidInput(
                f"Unknown parameter {unknown[0]!r}. This endpoint takes: member.",
                code="invalid_parameter",
                fields={unknown[0]: ["Unknown parameter."]},
            )
        return Response(mutual_connections(user=_user(request), member_id=request.query_params.get("member")))


class MessageSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=4000)


class ConversationMessagesApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="A conversation's messages (its two members only)", responses=dict[str, Any])
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_for(user=_user(request), conversation_id=conversation_id)
        try:
            after = max(int(request.query_params.get("after", 0)), 0)
        except ValueError:
            after = 0
        messages = [
            {
                "id": m.pk,
                "from": m.sender.profile.display_name if hasattr(m.sender, "profile") else str(m.sender),
                "mine": m.sender_id == request.user.pk,
                "body": m.body,
                "at": m.created_at,
            }
            for m in messages_for(conversation=conversation, after_id=after)
        ]
        return Response({"closed": conversation.closed_at is not None, "messages": messages})

    @extend_schema(summary="Write to a conversation", request=MessageSerializer, responses=dict[str, Any])
    def post(self, request: Request, conversation_id: str) -> Response:
        body = MessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = message_post(user=_user(request), conversation_id=conversation_id, body=body.validated_data["body"])
        return Response({"id": message.pk, "body": message.body, "at": message.created_at}, status=201)


class SystemStatusApi(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    @extend_schema(summary="The proposals loop's status", responses=dict[str, Any])
    def get(self, request: Request) -> Response:
        latest = metrics_latest()
        return Response(
            {
                "healthy": proposals_healthy(),
                "queue_depth": queue_depth(),
                "active_voting": active_voting(),
                "stuck_proposals": stuck_proposals(),
                "marks": {
                    "queue": [settings.PROPOSALS_QUEUE_LOW, settings.PROPOSALS_QUEUE_HIGH],
                    "voting": [settings.PROPOSALS_VOTING_LOW, settings.PROPOSALS_VOTING_HIGH],
                },
                "metrics_recorded_at": latest.recorded_at if latest else None,
            }
        )
