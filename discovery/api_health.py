"""Staff API of policy health and off-policy evaluation: thin views over ``discovery.health``
and ``discovery.ope_eval``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from discovery.health import PolicyHealthReport, policy_health
from discovery.ope_eval import SCORING_AFFINITY, SCORINGS, TargetPolicy, ope_evaluate, ope_result_as_json
from matchplatform.fields import StrictCharField, StrictChoiceField, StrictFloatField, StrictIntegerField
from matchplatform.openapi import error_responses


class IntervalSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    lower = serializers.FloatField(allow_null=True)
    upper = serializers.FloatField(allow_null=True)


class PolicyVersionHealthSerializer(serializers.Serializer):
    version = serializers.CharField()
    decisions = serializers.IntegerField()
    randomized = serializers.IntegerField(help_text="Drawn from a distribution (epsilon > 0)")
    explored = serializers.IntegerField(help_text="The random branch was taken")
    exploration_rate = serializers.FloatField(allow_null=True)
    epsilon = serializers.FloatField(allow_null=True, help_text="The mean epsilon the version logged")
    epsilons = serializers.ListField(child=serializers.FloatField(), help_text="Lowest and highest logged")
    exploration_judged = serializers.BooleanField(help_text="Enough decisions to tell")
    exploration_alert = serializers.BooleanField(help_text="Rate off epsilon by more than 50 %")
    exploration_detail = serializers.CharField()
    rewarded = serializers.IntegerField(help_text="Decisions with a reward joined (open windows included)")
    reward_closed = serializers.IntegerField(help_text="Decisions whose attribution window closed: the mean's sample")
    reward_open = serializers.IntegerField(help_text="Decisions still in their window: left out of the mean")
    mean_reward = IntervalSerializer(help_text="Over closed windows (no reward = 0), 95 % Wilson interval")
    off_propensity = serializers.IntegerField(
        help_text="Randomized decisions whose p_exp is neither epsilon-greedy value"
    )
    off_propensity_share = serializers.FloatField(allow_null=True)
    propensity_sample = serializers.IntegerField(
        help_text="The newest randomized decisions the propensity figures read (POLICY_HEALTH_PROPENSITY_SAMPLE)"
    )
    mean_importance_weight = serializers.FloatField(
        allow_null=True, help_text="Of the uniform-random policy: 1 in expectation when propensities are right"
    )
    effective_sample_size = serializers.FloatField(allow_null=True)
    first_decided_at = serializers.DateTimeField(allow_null=True)
    last_decided_at = serializers.DateTimeField(allow_null=True)


class PolicyHealthSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    attribution_seconds = serializers.IntegerField()
    versions = PolicyVersionHealthSerializer(many=True)


class PolicyHealthQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; default: until - POLICY_HEALTH_WINDOW_HOURS")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; default: now")
    version = StrictCharField(
        required=False, allow_blank=True, max_length=50, help_text="One policy version only (empty: every version)"
    )


def policy_health_as_json(report: PolicyHealthReport) -> dict[str, Any]:
    return PolicyHealthSerializer(asdict(report)).data


# Any ISO 8601 time is accepted; one outside these bounds is read as the nearest bound (no
# window reaches further, and the window arithmetic cannot overflow at year 1 or 9999).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _window(data: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The asked window, each end clamped to the bounds above; a window that ends before it
    starts is empty (it holds no decision), not an error."""
    since, until = (
        None if data.get(key) is None else min(max(data[key], _EARLIEST), _LATEST) for key in ("since", "until")
    )
    if since is not None and until is not None and since > until:
        since = until
    return since, until


class PolicyHealthApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Policy health per policy version (staff)",
        description="Decisions, exploration rate against epsilon (alert beyond +-50 %), rewarded decisions, mean"
        " reward with a 95 % interval over closed attribution windows, propensities that are neither epsilon-greedy"
        " value, mean importance weight and effective sample size. Window: the last 7 days unless given.",
        parameters=[PolicyHealthQuerySerializer],
        responses={200: PolicyHealthSerializer, **error_responses(400, 403)},
    )
    def get(self, request: Request) -> Response:
        query = PolicyHealthQuerySerializer(data=request.query_params.dict())  # a plain dict: an empty value is a value
        query.is_valid(raise_exception=True)
        data = query.validated_data
        since, until = _window(data)
        report = policy_health(since=since, until=until, version=data.get("version") or None)
        return Response(policy_health_as_json(report))


class CandidateSerializer(serializers.Serializer):
    epsilon = StrictFloatField(min_value=0.0, max_value=1.0)
    scoring = StrictChoiceField(choices=list(SCORINGS), required=False, default=SCORING_AFFINITY)


class OpeRequestSerializer(serializers.Serializer):
    version = StrictCharField(max_length=50, help_text="The ONE policy version whose logs are used")
    candidate = CandidateSerializer()
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    max_decisions = StrictIntegerField(required=False, min_value=2, max_value=2_000_000)


class EstimateSerializer(serializers.Serializer):
    value = serializers.FloatField()
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    std_error = serializers.FloatField()
    n = serializers.IntegerField()
    effective_sample_size = serializers.FloatField()


class OpeResultSerializer(serializers.Serializer):
    version = serializers.CharField()
    candidate = CandidateSerializer()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    decisions = serializers.IntegerField(help_text="The version's decisions in the window")
    randomized = serializers.IntegerField(help_text="... randomized (p_exp > 0): only these can be used")
    open_window = serializers.IntegerField(help_text="... still in their attribution window: not read")
    read = serializers.IntegerField()
    usable = serializers.IntegerField(help_text="Decisions the estimates use")
    observed_mean = serializers.FloatField(allow_null=True, help_text="The logging policy's mean reward on them")
    effective_sample_size = serializers.FloatField(allow_null=True)
    mean_importance_weight = serializers.FloatField(allow_null=True)
    estimates = serializers.DictField(child=EstimateSerializer(), help_text="ips, snips, dr")
    notes = serializers.ListField(child=serializers.CharField())


class OpeApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Evaluate a candidate policy off-policy on one version's logs (staff)",
        description="IPS, SNIPS and doubly robust estimates with 95 % intervals of an epsilon-greedy candidate"
        " (its epsilon, its scoring) on the randomized, closed-window decisions of ONE policy version (never"
        " pooled). 404 when the version logged nothing.",
        request=OpeRequestSerializer,
        responses={200: OpeResultSerializer, **error_responses(400, 403, 404)},
        examples=[
            OpenApiExample(
                "another epsilon",
                value={"version": "epsilon_greedy_v1", "candidate": {"epsilon": 0.05, "scoring": "affinity"}},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        given = OpeRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        since, until = _window(data)
        candidate = TargetPolicy(epsilon=data["candidate"]["epsilon"], scoring=data["candidate"]["scoring"])
        result = ope_evaluate(
            version=data["version"],
            candidate=candidate,
            since=since,
            until=until,
            # Never more than the configured cap inside a web request (the command may read more).
            max_decisions=min(data.get("max_decisions") or settings.OPE_MAX_DECISIONS, settings.OPE_MAX_DECISIONS),
        )
        return Response(OpeResultSerializer(ope_result_as_json(result)).data)
