"""The member-facing discovery API: the interest catalog, my interests, my suggestions, what I
did with them (signals), and my own ranking decisions (learning events).

Owner-only: every read and write is the signed-in member's own; another member's row (a
decision, a signal) answers 404 exactly like a missing one, to members and staff alike (staff
see aggregates in policy health, never other members' rows here). Input is strict (JSON types
as sent, bounded numbers and sizes), query parameters are checked as sent, and suggestions,
signals and interest changes are rate-limited per member (discovery.throttles).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from discovery import throttles
from discovery.configs import RankerPolicy
from discovery.models import Candidate, IntentSignal, LearningEvent
from discovery.selectors import (
    decision_for_user,
    decisions_page_for_user,
    interest_slugs_known,
    interests_catalog,
    interests_of_user_by_slug,
    signal_created_at,
    signals_page_for_user,
)
from discovery.services import signal_record, suggestions_for_user, user_interests_set
from matchplatform.exceptions import ErrorCode, InvalidInput, NotFound
from matchplatform.fields import StrictChoiceField, StrictIntegerField
from matchplatform.openapi import error_responses
from matchplatform.throttling import SettingRateThrottle
from proposals.ids import ID_MAX, public_id_parse

# The most interests one PUT may name (the catalog is far smaller), and a slug's shape.
INTERESTS_MAX = 200
SLUG_MAX = 50
_SLUG = re.compile(rf"[-a-zA-Z0-9_]{{1,{SLUG_MAX}}}")
# Suggestions per request: the policy's slate size caps it (and the config's schema caps that).
SUGGEST_LIMIT_MAX = next(int(m.le) for m in RankerPolicy.model_fields["slate_size"].metadata if hasattr(m, "le"))
# Pages of my signals and decisions.
PAGE_DEFAULT = 20
PAGE_MAX = 100

_CSRF = "a session's write without its CSRF token (X-CSRFToken)"


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


# --- query strings ---------------------------------------------------------------------------

_WHOLE = re.compile(r"[1-9][0-9]{0,18}")


def _bad(name: str, message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.INVALID_PARAMETER, fields={name: [message]})


def query_ints(params: Mapping[str, Any], *, allowed: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """The query string's whole-number parameters, checked as sent: an unknown parameter, one
    given twice, empty, not plain ASCII digits or out of its range is a 400 naming it (the
    value is not repeated). Returns the ones given."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise _bad(unknown[0], f"Unknown parameter. This endpoint takes: {', '.join(allowed) or 'none'}.")
    out: dict[str, int] = {}
    for name, (low, high) in allowed.items():
        getlist = getattr(params, "getlist", None)
        values = (
            [str(v) for v in getlist(name)] if getlist is not None else ([str(params[name])] if name in params else [])
        )
        if not values:
            continue
        if len(values) > 1:
            raise _bad(name, f"Give {name} once.")
        text = values[0]
        if _WHOLE.fullmatch(text) is None or not low <= int(text) <= high:
            raise _bad(name, f"{name} is a whole number from {low} to {high}.")
        out[name] = int(text)
    return out


def _int_parameter(name: str, low: int, high: int, description: str, default: int | None = None) -> OpenApiParameter:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description)


PAGE_PARAMETERS = [
    _int_parameter("limit", 1, PAGE_MAX, "Rows per page.", PAGE_DEFAULT),
    _int_parameter("before", 1, ID_MAX, "The next_before of the previous page: rows older than it."),
]


# --- serializers -------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
        "maxProperties": INTERESTS_MAX,
        "description": "Interest slug -> affinity from 0 to 1. These become the member's interests exactly "
        "(an interest left out is removed; {} removes them all).",
        "example": {"ai": 1.0, "fintech": 0.4},
    }
)
class AffinitiesField(serializers.Field):
    """A JSON object of slug -> number 0..1 (not a string of digits, not a boolean), at most
    INTERESTS_MAX entries. Which slugs exist is the catalog's business (a 404 in the view)."""

    default_error_messages = {
        "invalid_type": "Must be an object of interest slug to affinity.",
        "too_many": f"At most {INTERESTS_MAX} interests.",
        "affinity": "An affinity is a number from 0 to 1.",
    }

    def run_validation(self, data: Any = empty) -> Any:
        if data is not empty and data is not None and not isinstance(data, dict):
            self.fail("invalid_type")
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> dict[str, float]:
        if not isinstance(data, dict):
            self.fail("invalid_type")
        if len(data) > INTERESTS_MAX:
            self.fail("too_many")
        out: dict[str, float] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                self.fail("affinity")
            out[str(key)] = float(value)
        return out

    def to_representation(self, value: Any) -> dict[str, float]:
        return dict(value)


class InterestSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class CatalogOutputSerializer(serializers.Serializer):
    results = InterestSerializer(many=True)


class MyInterestsInputSerializer(serializers.Serializer):
    interests = AffinitiesField()


class MyInterestsOutputSerializer(serializers.Serializer):
    interests = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=1), help_text="Interest slug -> affinity (0..1)."
    )


class SuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Candidate.Kind.values)
    category = serializers.CharField(help_text="The category's slug.")
    category_name = serializers.CharField()


class SuggestionsOutputSerializer(serializers.Serializer):
    decision_id = serializers.UUIDField(
        allow_null=True,
        help_text="The logged decision that served this slate: send it with a signal. null when nothing was "
        "logged (learning off, or nothing served).",
    )
    personal = serializers.BooleanField(help_text="false: the fallback slate (no interests, or nothing for them).")
    items = SuggestionSerializer(many=True)


class SignalInputSerializer(serializers.Serializer):
    candidate = StrictIntegerField(min_value=1, max_value=ID_MAX, help_text="The candidate's id (an item's id).")
    kind = StrictChoiceField(choices=IntentSignal.Kind.values)
    decision_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        format="hex_verbose",
        help_text="The decision_id the item was served with; left out, the latest decision of yours that "
        "served it within the attribution window.",
    )

    def to_internal_value(self, data: Any) -> Any:
        # A UUIDField takes a number or a UUID object too; a JSON string only here.
        if isinstance(data, dict) and data.get("decision_id") is not None and not isinstance(data["decision_id"], str):
            raise serializers.ValidationError({"decision_id": ["Must be a UUID string."]}, code="invalid_type")
        return super().to_internal_value(data)


class SignalOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    candidate = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=IntentSignal.Kind.values)
    decision_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class SignalPageSerializer(serializers.Serializer):
    results = SignalOutputSerializer(many=True)
    next_before = serializers.IntegerField(allow_null=True, help_text="Pass as before for the next page.")


class DecisionOutputSerializer(serializers.Serializer):
    decision_id = serializers.UUIDField()
    surface = serializers.CharField()
    policy_version = serializers.CharField()
    decided_at = serializers.DateTimeField()
    slate = serializers.ListField(child=serializers.IntegerField(), help_text="The candidates served, in order.")
    chosen = serializers.IntegerField(help_text="The candidate the slate led with.")
    explored = serializers.BooleanField()
    reward = serializers.FloatField(allow_null=True, help_text="1 once a click or save on the chosen item joined.")
    rewarded_at = serializers.DateTimeField(allow_null=True)


class DecisionDetailSerializer(DecisionOutputSerializer):
    p_exp = serializers.FloatField(help_text="The chosen item's propensity (0: not randomized).")
    randomized = serializers.BooleanField()


class DecisionPageSerializer(serializers.Serializer):
    results = DecisionOutputSerializer(many=True)
    next_before = serializers.IntegerField(allow_null=True, help_text="Pass as before for the next page.")


# --- views -------------------------------------------------------------------------------------


class WriteThrottledApi(APIView):
    """A view whose writes (not its reads) count against the member's bucket ``throttle_scope``."""

    throttle_classes = [SettingRateThrottle]

    def get_throttles(self) -> list[BaseThrottle]:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return []
        return super().get_throttles()


class InterestCatalogApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="discovery_interests_catalog",
        summary="The interests a member can pick",
        responses={200: CatalogOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        query_ints(request.query_params, allowed={})
        return Response(CatalogOutputSerializer({"results": list(interests_catalog())}).data)


class MyInterestsApi(WriteThrottledApi):
    permission_classes = [IsAuthenticated]
    throttle_scope = throttles.INTERESTS

    @extend_schema(
        operation_id="discovery_my_interests",
        summary="My interests, with how strongly (0..1)",
        responses={200: MyInterestsOutputSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        query_ints(request.query_params, allowed={})
        return Response(MyInterestsOutputSerializer({"interests": interests_of_user_by_slug(user=_user(request))}).data)

    @extend_schema(
        operation_id="discovery_my_interests_set",
        summary="Set my interests",
        description="The body's interests become the member's exactly (an affinity 0..1 each; one left out is "
        "removed); discovery is queued for the new and changed ones. An interest the catalog does not have "
        "(GET /api/discovery/interests) is a 404 and nothing changes. Rate-limited per member "
        "(DISCOVERY_RATE_INTERESTS): 429 with Retry-After.",
        request=MyInterestsInputSerializer,
        responses={
            200: MyInterestsOutputSerializer,
            **error_responses(
                400,
                403,
                404,
                413,
                415,
                429,
                d400='The body is not {"interests": {slug: number 0..1}}, or names over 200 interests.',
                d403=f"Refused: {_CSRF}.",
                d404="An interest named is not in the catalog; nothing was changed.",
                d429="Too many interest changes by this member; see Retry-After.",
            ),
        },
        examples=[OpenApiExample("set", value={"interests": {"ai": 1.0, "fintech": 0.4}}, request_only=True)],
    )
    def put(self, request: Request) -> Response:
        query_ints(request.query_params, allowed={})
        body = MyInterestsInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        affinities: dict[str, float] = body.validated_data["interests"]
        known = interest_slugs_known(slugs=[s for s in affinities if _SLUG.fullmatch(s)])
        unknown = [s for s in affinities if s not in known]
        if unknown:
            # Named when it is a slug's shape (the caller's own text otherwise: never repeated).
            named = f" ({unknown[0]})" if _SLUG.fullmatch(unknown[0]) else ""
            message = f"Not an interest of the catalog{named}: GET /api/discovery/interests lists them."
            raise NotFound(message, fields={"interests": [message]})
        rows = user_interests_set(user=_user(request), affinities=affinities)
        return Response(MyInterestsOutputSerializer({"interests": {r.interest.slug: r.affinity for r in rows}}).data)


class SuggestionsApi(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = throttles.SUGGEST

    @extend_schema(
        operation_id="discovery_suggestions",
        summary="My suggestions",
        description="Ranked by the configured policy from my interests (or the fallback slate), and the decision "
        "logged for learning: send its decision_id with the signals about these items. Empty when suggestions "
        "are switched off (marketplace.suggest). Rate-limited per member (DISCOVERY_RATE_SUGGEST).",
        parameters=[
            _int_parameter(
                "limit", 1, SUGGEST_LIMIT_MAX, "At most this many items (and never more than the policy's slate size)."
            )
        ],
        responses={
            200: SuggestionsOutputSerializer,
            **error_responses(400, 429, d429="Too many suggestion requests by this member; see Retry-After."),
        },
    )
    def get(self, request: Request) -> Response:
        limit = query_ints(request.query_params, allowed={"limit": (1, SUGGEST_LIMIT_MAX)}).get("limit")
        served = suggestions_for_user(user=_user(request), limit=limit)  # the slate comes with its categories
        items = [
            {"id": c.id, "name": c.name, "kind": c.kind, "category": c.category_slug, "category_name": c.category_name}
            for c in served.candidates
        ]
        # Already the documented shape (SuggestionsOutputSerializer), of plain values: answered
        # as it is, without a serializer pass on the busiest endpoint.
        return Response({"decision_id": served.decision_id, "personal": served.personal, "items": items})


class SignalsApi(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = throttles.SIGNAL

    @extend_schema(
        operation_id="discovery_signal_record",
        summary="Record what I did with a suggested item",
        description="A click or save on the item a decision of mine led with, within the policy's attribution "
        "window, is that decision's reward (the first one only). A candidate that does not exist (or is no "
        "longer active), or a decision_id that is not one of mine, is a 404. Rate-limited per member "
        "(DISCOVERY_RATE_SIGNAL).",
        request=SignalInputSerializer,
        responses={
            201: SignalOutputSerializer,
            **error_responses(
                400,
                403,
                404,
                413,
                415,
                429,
                d403=f"Refused: {_CSRF}.",
                d404="No such candidate, or no such decision of yours.",
                d429="Too many signals by this member; see Retry-After.",
            ),
        },
        examples=[
            OpenApiExample(
                "click",
                value={"candidate": 7, "kind": "click", "decision_id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        query_ints(request.query_params, allowed={})
        body = SignalInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decision_id = body.validated_data.get("decision_id")
        signal = signal_record(
            user=_user(request),
            candidate_id=body.validated_data["candidate"],
            kind=body.validated_data["kind"],
            decision_id=str(decision_id) if decision_id is not None else None,
        )
        data = {
            "id": signal.pk,
            "candidate": signal.candidate_id,
            "kind": signal.kind,
            "decision_id": signal.decision.decision_id if signal.decision is not None else None,
            "created_at": signal.created_at
            if isinstance(signal.created_at, datetime)
            else signal_created_at(user=_user(request), signal_id=signal.pk),
        }
        return Response(SignalOutputSerializer(data).data, status=201)


def _page(params: Mapping[str, Any]) -> tuple[int, int | None]:
    query = query_ints(params, allowed={"limit": (1, PAGE_MAX), "before": (1, ID_MAX)})
    return query.get("limit", PAGE_DEFAULT), query.get("before")


class MySignalsApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="discovery_my_signals",
        summary="My signals, newest first",
        parameters=PAGE_PARAMETERS,
        responses={200: SignalPageSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        limit, before = _page(request.query_params)
        page = signals_page_for_user(user=_user(request), limit=limit, before=before)
        return Response(SignalPageSerializer({"results": page.results, "next_before": page.next_before}).data)


def _decision_data(event: LearningEvent) -> dict[str, Any]:
    return {
        "decision_id": event.decision_id,
        "surface": event.surface,
        "policy_version": event.policy_version,
        "decided_at": event.decided_at,
        "slate": event.slate,
        "chosen": event.chosen_id,
        "explored": event.explored,
        "reward": event.reward,
        "rewarded_at": event.rewarded_at,
        "p_exp": event.p_exp,
        "randomized": event.randomized,
    }


class MyDecisionsApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="discovery_my_decisions",
        summary="My ranking decisions (what I was served, and whether it was rewarded), newest first",
        parameters=PAGE_PARAMETERS,
        responses={200: DecisionPageSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        limit, before = _page(request.query_params)
        page = decisions_page_for_user(user=_user(request), limit=limit, before=before)
        results = [_decision_data(e) for e in page.results]
        return Response(DecisionPageSerializer({"results": results, "next_before": page.next_before}).data)


class MyDecisionDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="discovery_my_decision",
        summary="One of my ranking decisions",
        parameters=[
            OpenApiParameter("decision_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The decision_id.")
        ],
        responses={200: DecisionDetailSerializer, **error_responses(404, d404="No such decision of yours.")},
    )
    def get(self, request: Request, decision_id: str) -> Response:
        query_ints(request.query_params, allowed={})
        # Another member's decision and a missing one answer alike (a 404).
        event = decision_for_user(user=_user(request), decision_id=public_id_parse(decision_id))
        return Response(DecisionDetailSerializer(_decision_data(event)).data)
