"""The proposals API: my profile, proposals and votes, the matches feed, answers, follow-all,
mutual connections, conversations, and the loop's public status.

Every operation declares every status it can answer. Anonymous callers get 401 (the first
authentication class, the API token, names its scheme); a wrong token is a failed sign-in that
can lock the client out (429); a session's write without its CSRF token is a 403; a database
pool that ran dry is a 503. Query parameters are checked as sent, against what the schema
declares (see proposals/feed.py), and a bad one is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import ErrorCode, InvalidInput, NotFound
from matchplatform.openapi import error_responses
from proposals.api_serializers import (
    ConversationOutputSerializer,
    FeedItemSerializer,
    FeedPageSerializer,
    FollowAllOutputSerializer,
    MessageInputSerializer,
    MessageOutputSerializer,
    MutualConnectionsOutputSerializer,
    NextProposalOutputSerializer,
    ProfileInputSerializer,
    ProfileOutputSerializer,
    ProposalOutputSerializer,
    SystemStatusSerializer,
    VoteInputSerializer,
    VoteOutputSerializer,
)
from proposals.identity.selectors import profile_for
from proposals.identity.services import profile_update
from proposals.ids import ID_MAX, id_parse
from proposals.invariants import active_voting, proposals_healthy, queue_depth, stuck_proposals
from proposals.matches.cards import item_data
from proposals.matches.params import feed_query_parse
from proposals.matches.selectors import (
    FeedPage,
    conversation_for,
    event_exists,
    feed_item_for,
    feed_page,
    messages_for,
    mutual_connections,
)
from proposals.matches.services import follow_all, match_decide, message_post
from proposals.matches.terms import (
    CURSOR_MAX_CHARS,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    SORTS,
    SOURCES,
    STATUS_PATTERN,
    STATUSES,
)
from proposals.models import Profile, Proposal
from proposals.voting.selectors import metrics_latest, proposal_for_viewer, proposal_next_for_voter
from proposals.voting.services import proposal_open_for_voter, vote_cast

MESSAGES_PAGE = 100
_ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": ID_MAX}

# 401, 429 and 503, which every signed-in operation can answer, come from matchplatform.openapi.AutoSchema.
_CSRF = "a session's write without its CSRF token (X-CSRFToken)"
_WRITE = {"d403": f"Refused: {_CSRF}."}


def _path_id(name: str) -> OpenApiParameter:
    """A public id in the path: a UUID; any other text answers 404 like an unknown id."""
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH)


def _params_known(request: Request, *, allowed: Sequence[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        message = f"Unknown parameter {unknown[0]!r}. This endpoint takes: {', '.join(allowed)}."
        raise InvalidInput(message, code=ErrorCode.INVALID_PARAMETER, fields={unknown[0]: ["Unknown parameter."]})


def _after_parse(values: list[str]) -> int:
    """``after`` of a conversation's messages: a message id, or 0 (the start) when not given."""
    if len(values) > 1:
        raise _bad_after("Give after once.")
    if not values or values[0] == "0":
        return 0
    after = id_parse(values[0])
    if after is None:
        raise _bad_after("after is a message id: a whole number from 0.")
    return after


def _bad_after(message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.INVALID_PARAMETER, fields={"after": [message]})


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def profile_public(member: User) -> dict[str, Any]:
    """What a voter may see of a member: a private member (or one with no profile) shows only
    their name."""
    profile: Profile | None = getattr(member, "profile", None)
    if profile is None:
        return {"display_name": member.get_username(), "privacy": Profile.Privacy.PRIVATE}
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
        "members": [profile_public(proposal.member_a), profile_public(proposal.member_b)],
        "deadline": proposal.deadline,
        "seconds_left": left,
        "yes": proposal.yes_count if viewer.is_staff else None,
        "no": proposal.no_count if viewer.is_staff else None,
    }


class MyProfileApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="My profile",
        description="A read never writes: a member with no profile yet sees the defaults one would be created"
        " with (display name = username, public, no interests); the first PATCH creates it.",
        responses={200: ProfileOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(self._out(profile_for(user=_user(request))))

    @extend_schema(
        summary="Update my profile",
        description="Only the fields given change. Text is trimmed; a display name must not be empty.",
        request=ProfileInputSerializer,
        responses={200: ProfileOutputSerializer, **error_responses(400, 403, 413, 415, **_WRITE)},
    )
    def patch(self, request: Request) -> Response:
        body = ProfileInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile_update(user=_user(request), **body.validated_data)
        return Response(self._out(profile_for(user=_user(request))))

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

    @extend_schema(summary="My next proposal to vote on", responses={200: NextProposalOutputSerializer})
    def get(self, request: Request) -> Response:
        user = _user(request)
        proposal = proposal_next_for_voter(user=user) or proposal_open_for_voter(user=user)
        if proposal is None:
            return Response({"proposal": None, "reason": "There is nothing to vote on right now."})
        proposal = proposal_for_viewer(user=user, proposal_id=proposal.public_id)
        return Response({"proposal": proposal_data(proposal, viewer=user)})


class ProposalDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="A proposal (its voters and staff only)",
        parameters=[_path_id("proposal_id")],
        responses={200: ProposalOutputSerializer, **error_responses(404)},
    )
    def get(self, request: Request, proposal_id: str) -> Response:
        user = _user(request)
        return Response(proposal_data(proposal_for_viewer(user=user, proposal_id=proposal_id), viewer=user))


class VoteApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Vote on a proposal",
        description="201 for a new vote; 200 when it repeats the member's vote; 409 for a different one.",
        parameters=[_path_id("proposal_id")],
        request=VoteInputSerializer,
        responses={
            201: VoteOutputSerializer,
            200: VoteOutputSerializer,
            **error_responses(
                400,
                403,
                404,
                409,
                413,
                415,
                d403=f"Not a voter on this proposal; or {_CSRF}.",
                d409="Already voted otherwise, or voting has closed.",
            ),
        },
    )
    def post(self, request: Request, proposal_id: str) -> Response:
        body = VoteInputSerializer(data=request.data)
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
            "Paging by cursor: pass `next_cursor` back as `cursor` with the same sort; `page_size` 1 to 100 "
            "(default 20). A parameter given must have a value; an unknown parameter, an empty or bad value, "
            "or a cursor the feed did not give out is a 400 naming the parameter; an event that does not exist "
            "is a 404."
        ),
        parameters=[
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"type": "string", "pattern": STATUS_PATTERN}},
                style="form",
                explode=True,
                description=f"Any of {', '.join(STATUSES)}: repeat the parameter or separate with commas.",
            ),
            OpenApiParameter("event", _ID_SCHEMA, description="An event id: only the matches made at it."),
            OpenApiParameter("source", {"type": "string", "enum": list(SOURCES)}),
            OpenApiParameter("min_compatibility", {"type": "number", "minimum": 0, "maximum": 1}),
            OpenApiParameter("sort", {"type": "string", "enum": list(SORTS), "default": "newest"}),
            OpenApiParameter(
                "cursor",
                {"type": "string", "minLength": 1, "maxLength": CURSOR_MAX_CHARS, "pattern": "^[A-Za-z0-9_-]+$"},
                description="A next_cursor this feed gave out, with the same sort; anything else is a 400.",
            ),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX, "default": PAGE_SIZE_DEFAULT},
            ),
        ],
        responses={
            200: FeedPageSerializer,
            **error_responses(400, 404, d404="There is no event with this id."),
        },
    )
    def get(self, request: Request) -> Response:
        user = _user(request)
        query = feed_query_parse(request.query_params)
        if query.event_id is not None and not event_exists(query.event_id):
            raise NotFound("There is no such event.", code=ErrorCode.NOT_FOUND, fields={"event": ["No such event."]})
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

    @extend_schema(
        operation_id="match_detail",
        summary="One of my matches",
        parameters=[_path_id("match_id")],
        responses={200: FeedItemSerializer, **error_responses(404)},
    )
    def get(self, request: Request, match_id: str) -> Response:
        user = _user(request)
        return Response(_feed_out(feed_item_for(user=user, match_id=match_id))[0])


class MatchAnswerApi(APIView):
    """POST /api/matches/<id>/accept and /reject. A decided or expired match answers 409."""

    permission_classes = [IsAuthenticated]
    decision = "accept"

    @extend_schema(
        summary="Answer a match (accept or reject)",
        description="The same answer again is a harmless 200; a different one, or a decided or expired match, a 409.",
        parameters=[_path_id("match_id")],
        request=None,
        responses={
            200: FeedItemSerializer,
            **error_responses(
                403,
                404,
                409,
                **_WRITE,
                d409="Already answered otherwise, or the match is decided or expired.",
            ),
        },
    )
    def post(self, request: Request, match_id: str) -> Response:
        user = _user(request)
        match_decide(user=user, match_id=match_id, decision=self.decision)
        return Response(_feed_out(feed_item_for(user=user, match_id=match_id))[0])


class MatchFollowAllApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Follow every connection of the other member of an accepted match",
        parameters=[_path_id("match_id")],
        request=None,
        responses={
            200: FollowAllOutputSerializer,
            **error_responses(
                403,
                404,
                d403=f"The match is not accepted; or {_CSRF}.",
            ),
        },
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
        parameters=[OpenApiParameter("member", _ID_SCHEMA, required=True, description="A member id.")],
        responses={
            200: MutualConnectionsOutputSerializer,
            **error_responses(
                400,
                404,
                d400="member is missing, not a member id, or your own; or an unknown parameter.",
                d404="No such member, or one you have no match with who is not public.",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        _params_known(request, allowed=("member",))
        return Response(mutual_connections(user=_user(request), member_id=request.query_params.get("member")))


class ConversationMessagesApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="A conversation's messages (its two members only)",
        description=f"Oldest first, at most {MESSAGES_PAGE} from `after` (a message id; 0, the default, is the start).",
        parameters=[
            _path_id("conversation_id"),
            OpenApiParameter("after", {"type": "integer", "minimum": 0, "maximum": ID_MAX, "default": 0}),
        ],
        responses={
            200: ConversationOutputSerializer,
            **error_responses(400, 404, d400="after is not a message id, or an unknown parameter."),
        },
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        _params_known(request, allowed=("after",))
        after = _after_parse(request.query_params.getlist("after"))
        conversation = conversation_for(user=_user(request), conversation_id=conversation_id)
        messages = [
            {
                "id": m.pk,
                "from": m.sender.profile.display_name if hasattr(m.sender, "profile") else str(m.sender),
                "mine": m.sender_id == request.user.pk,
                "body": m.body,
                "at": m.created_at,
            }
            for m in messages_for(conversation=conversation, after_id=after, limit=MESSAGES_PAGE)
        ]
        return Response({"closed": conversation.closed_at is not None, "messages": messages})

    @extend_schema(
        summary="Write to a conversation",
        description="The body is trimmed; it must not be empty.",
        parameters=[_path_id("conversation_id")],
        request=MessageInputSerializer,
        responses={
            201: MessageOutputSerializer,
            **error_responses(400, 403, 404, 409, 413, 415, **_WRITE, d409="The conversation is closed."),
        },
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        body = MessageInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = message_post(user=_user(request), conversation_id=conversation_id, body=body.validated_data["body"])
        return Response({"id": message.pk, "body": message.body, "at": message.created_at}, status=201)


class SystemStatusApi(APIView):
    # Public, and nobody's identity matters to it: no credential is even looked at, so a
    # wrong token is no 401 here.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The proposals loop's status",
        auth=[],
        responses={200: SystemStatusSerializer, **error_responses()},
    )
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
