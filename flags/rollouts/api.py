"""Staff API for staged rollouts: list, create, act (start, pause, resume, advance, roll back),
read the decision timeline, and the gate metrics a rollout can name."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.gates import gate_metrics_all
from flags.rollouts import services
from flags.rollouts.models import Rollout
from flags.rollouts.selectors import rollout_get, rollout_timeline
from flags.rollouts.states import RollbackAction, rollout_actions_allowed
from matchplatform.fields import StrictCharField, StrictChoiceField, StrictFloatField, StrictIntegerField
from matchplatform.openapi import error_responses

ROLLOUT_NAME = OpenApiParameter("rollout_name", str, OpenApiParameter.PATH, description="The rollout's name")

ACTIONS = {
    "start": services.rollout_start,  # a draft, or a rolled-back one again (same units per stage)
    "pause": services.rollout_pause,
    "resume": services.rollout_resume,
    "advance": services.rollout_advance,
    "rollback": services.rollout_rollback,
}


class RolloutSerializer(serializers.Serializer):
    name = serializers.CharField()
    flag = serializers.CharField(source="flag.name")
    state = serializers.CharField()
    stages = serializers.ListField(child=serializers.FloatField())
    stage_index = serializers.IntegerField()
    percent = serializers.FloatField(help_text="The current stage's percentage")
    serving = serializers.SerializerMethodField(help_text="The flag's percentage now (0 after a rollback)")
    gates = serializers.ListField(child=serializers.DictField())
    min_dwell_seconds = serializers.IntegerField()
    min_sample = serializers.IntegerField()
    min_gate_sample = serializers.IntegerField()
    breaches_to_rollback = serializers.IntegerField()
    rollback_action = serializers.CharField()
    alpha = serializers.FloatField()
    stage_started_at = serializers.DateTimeField(allow_null=True)
    actions = serializers.SerializerMethodField(help_text="What may be done now")

    def get_serving(self, rollout: Rollout) -> float:
        return float(rollout.flag.percent or 0)

    def get_actions(self, rollout: Rollout) -> list[str]:
        allowed = rollout_actions_allowed(state=rollout.state)
        return [a for a in ACTIONS if a in allowed or (a == "start" and "restart" in allowed)]


class RolloutCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100, help_text="A slug; names the rollout in metrics and alerts")
    flag = StrictCharField(max_length=100)
    stages = serializers.ListField(
        child=StrictFloatField(min_value=0.1, max_value=100),
        required=False,
        min_length=1,
        max_length=20,
        help_text="Percentages, increasing, at most one decimal place; default [5, 25, 100]",
    )
    gates = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        max_length=20,
        help_text='e.g. [{"metric": "http.p95_ms", "op": "<=", "threshold": 800},'
        ' {"metric": "http.error_rate", "max_lift": 0.1}] (GET /api/staff/rollouts/gates lists the metrics)',
    )
    min_dwell_seconds = StrictIntegerField(required=False, min_value=0, max_value=30 * 24 * 3600)
    min_sample = StrictIntegerField(required=False, min_value=0, max_value=2**31 - 1)
    min_gate_sample = StrictIntegerField(required=False, min_value=0, max_value=2**31 - 1)
    breaches_to_rollback = StrictIntegerField(required=False, min_value=1, max_value=100)
    rollback_action = StrictChoiceField(choices=RollbackAction.choices, required=False)
    alpha = StrictFloatField(required=False, min_value=0.0001, max_value=0.5)
    reason = StrictCharField(required=False, allow_blank=True, max_length=100)


class RolloutActionSerializer(serializers.Serializer):
    action = StrictChoiceField(choices=list(ACTIONS))
    reason = StrictCharField(required=False, allow_blank=True, max_length=100)


class DecisionSerializer(serializers.Serializer):
    decided_at = serializers.DateTimeField()
    decision = serializers.CharField()
    reason = serializers.CharField()
    figures = serializers.DictField()
    stage_index = serializers.IntegerField()
    percent = serializers.FloatField()
    actor = serializers.SerializerMethodField(help_text="Who decided (null: the controller)")

    def get_actor(self, decision: Any) -> str | None:
        return decision.actor.get_username() if decision.actor_id else None


class GateMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    app = serializers.CharField()
    description = serializers.CharField()
    comparative = serializers.BooleanField(help_text="true: judged treatment against control (max_lift)")
    unit = serializers.CharField()


class RolloutsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Every rollout (staff)", responses={200: RolloutSerializer(many=True), **error_responses(403)}
    )
    def get(self, request: Request) -> Response:
        rollouts = Rollout.objects.select_related("flag").order_by("-id")[:500]
        return Response(RolloutSerializer(rollouts, many=True).data)

    @extend_schema(
        summary="Create a draft rollout of a flag (staff)",
        description="Stages, gates and alpha are checked: a bad one answers 400 naming the field.",
        request=RolloutCreateSerializer,
        responses={201: RolloutSerializer, **error_responses(400, 403, 409)},
        examples=[
            OpenApiExample(
                "canary",
                value={
                    "name": "new-engine",
                    "flag": "match_engine_v1",
                    "stages": [5, 25, 100],
                    "gates": [{"metric": "http.error_rate", "max_lift": 0.1}],
                    "reason": "engine v2",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        given = RolloutCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        rollout = services.rollout_create(**data, actor=request.user)  # type: ignore[arg-type]
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class RolloutApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A rollout (staff)",
        parameters=[ROLLOUT_NAME],
        responses={200: RolloutSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, rollout_name: str) -> Response:
        return Response(RolloutSerializer(rollout_get(name=rollout_name)).data)


class RolloutActionApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Start, pause, resume, advance or roll back a rollout (staff)",
        description="A move the rollout's state does not allow answers 409 and changes nothing. Start also"
        " restarts a rolled-back rollout at its first stage, with the same units in each stage.",
        parameters=[ROLLOUT_NAME],
        request=RolloutActionSerializer,
        responses={200: RolloutSerializer, **error_responses(400, 403, 404, 409)},
        examples=[OpenApiExample("roll back", value={"action": "rollback", "reason": "p95 up"}, request_only=True)],
    )
    def post(self, request: Request, rollout_name: str) -> Response:
        given = RolloutActionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        rollout = rollout_get(name=rollout_name)
        act = ACTIONS[given.validated_data["action"]]
        act(rollout_id=rollout.pk, actor=request.user, reason=given.validated_data.get("reason", ""))  # type: ignore[arg-type]
        return Response(RolloutSerializer(rollout_get(name=rollout_name)).data)


class RolloutDecisionsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A rollout's decision timeline, newest first (staff)",
        description="Every start, advance, pause, rollback and completion, and the latest holds, each with its"
        " reason and figures.",
        parameters=[ROLLOUT_NAME],
        responses={200: DecisionSerializer(many=True), **error_responses(403, 404)},
    )
    def get(self, request: Request, rollout_name: str) -> Response:
        rollout = rollout_get(name=rollout_name)
        return Response(DecisionSerializer(rollout_timeline(rollout_id=rollout.pk), many=True).data)


class GateMetricsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="The gate metrics a rollout can name (staff)",
        responses={200: GateMetricSerializer(many=True), **error_responses(403)},
    )
    def get(self, request: Request) -> Response:
        return Response(GateMetricSerializer(gate_metrics_all(), many=True).data)
