"""Health endpoints: live and ready for load balancers and orchestrators, the full report for
people. All three are public (a probe has no credentials); none says more than a status to
an anonymous caller about why a dependency is down."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import ErrorCode, ServiceUnavailable
from matchplatform.openapi import error_responses
from ops.health import STATUS_CRITICAL, STATUS_DEGRADED, STATUS_OK, health_report, readiness_check
from ops.models import InvariantState


class LiveOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class DependencySerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class ReadyOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ready"])
    database = DependencySerializer()
    broker = DependencySerializer()


class DatabaseStateSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    vendor = serializers.CharField()
    error = serializers.CharField(required=False, help_text="Why it is down (staff only).")


class BrokerStateSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    transport = serializers.CharField()
    error = serializers.CharField(required=False, help_text="Why it is down (staff only).")


class InvariantStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    app = serializers.CharField()
    state = serializers.ChoiceField(choices=InvariantState.values)
    value = serializers.FloatField(allow_null=True)
    sample = serializers.IntegerField(
        allow_null=True, help_text="How many items a rate or average was computed from (null for other checks)."
    )
    detail = serializers.CharField(allow_blank=True)


class WorkersSerializer(serializers.Serializer):
    live = serializers.IntegerField()
    stale = serializers.IntegerField()


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[STATUS_OK, STATUS_DEGRADED, STATUS_CRITICAL],
        help_text="critical: the broker is down or an invariant is critical; degraded: one warns or failed to run.",
    )
    database = DatabaseStateSerializer()
    broker = BrokerStateSerializer()
    queues = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()), help_text="Rows per status, per queue."
    )
    workers = WorkersSerializer()
    safe_mode = serializers.BooleanField()
    invariants = InvariantStateSerializer(many=True)


def _is_staff(request: Request) -> bool:
    return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class HealthLiveApi(APIView):
    # No authentication: answering must not touch the database or the session store.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Liveness: the process answers",
        description="Always 200 while the process serves requests; asks no database or broker. "
        "For an orchestrator's liveness probe (restart the process when it stops answering).",
        responses={200: LiveOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(LiveOutputSerializer({"status": "ok"}).data)


class HealthReadyApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Readiness: the database and the broker are reachable",
        description="The endpoint for load balancers: 200 when this node can serve, 503 when the "
        "database or the broker cannot be reached. Invariants (error rates, queues) never change it.",
        responses={
            200: ReadyOutputSerializer,
            **error_responses(503, d503="The database or the broker is not reachable (code unavailable)."),
        },
    )
    def get(self, request: Request) -> Response:
        readiness = readiness_check()
        if not readiness["ready"]:
            down = [name for name in ("database", "broker") if not readiness[name]["ok"]]
            raise ServiceUnavailable(
                f"Not ready: the {' and the '.join(down)} cannot be reached.",
                code=ErrorCode.UNAVAILABLE,
                fields={name: ["Not reachable."] for name in down},
            )
        data = {
            "status": "ready",
            "database": {"ok": True},
            "broker": {"ok": True},
        }
        return Response(ReadyOutputSerializer(data).data)


class HealthApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Platform health, for people",
        description="Database, broker, queue depths, workers and every invariant's latest state, with a "
        "status of ok, degraded or critical. 200 whatever the status, unless the database is down (503): "
        "load balancers should use /api/health/ready instead. Rates and averages over too few runs read "
        "insufficient_data (counted as ok) and name their sample size.",
        responses={
            200: HealthOutputSerializer,
            **error_responses(
                401,
                503,
                d401="Credentials were sent and are not valid (none are needed).",
                d503="The database cannot be reached (code unavailable).",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        if not report["database"]["ok"]:
            raise ServiceUnavailable("The database cannot be reached.", code=ErrorCode.UNAVAILABLE)
        if not _is_staff(request):
            # Driver and broker errors name hosts and ports: not for anonymous callers.
            for name in ("database", "broker"):
                report[name] = {key: value for key, value in report[name].items() if key != "error"}
        return Response(HealthOutputSerializer(report).data)
