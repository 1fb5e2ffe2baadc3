from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from matchplatform.exceptions import Conflict
from runs.models import MatchRun, MatchRunStatus
from runs.selectors import match_run_get, match_run_matches, match_run_timeline, match_runs_hourly
from runs.services import match_run_submit


class SubmitThrottle(SimpleRateThrottle):
    """Per-client limit on submissions; the rate is read from settings at call time."""

    scope = "match_submit"

    def get_rate(self) -> str | None:
        return settings.RUNS_SUBMIT_RATE or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class SubmitInputSerializer(serializers.Serializer):
    # JSONField keeps the raw value: the service reports a non-string url itself.
    url = serializers.JSONField(allow_null=True, help_text="The startup's website, http or https.")


class SubmitOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    status = serializers.CharField()
    canonical_url = serializers.CharField()
    created = serializers.BooleanField()


class RunOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    status = serializers.CharField()
    canonical_url = serializers.CharField()
    startup = serializers.SerializerMethodField()
    match_count = serializers.IntegerField()
    attempts = serializers.IntegerField()
    rescues = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    elapsed_ms = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    def get_startup(self, run: MatchRun) -> dict[str, Any] | None:
        if run.startup is None:
            return None
        return {"name": run.startup.name, "description": run.startup.description, "sectors": run.startup.sectors}

    def get_elapsed_ms(self, run: MatchRun) -> int:
        if run.duration_ms is not None:
            return run.duration_ms
        end = run.finished_at or timezone.now()
        return max(int((end - run.created_at).total_seconds() * 1000), 0)

    def get_error(self, run: MatchRun) -> str | None:
        return run.last_error or None


class MatchOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    score = serializers.FloatField()
    reasons = serializers.ListField(child=serializers.CharField())
    investor = serializers.SerializerMethodField()

    def get_investor(self, match: Any) -> dict[str, Any]:
        inv = match.investor
        return {
            "id": inv.pk,
            "name": inv.name,
            "sectors": inv.sectors,
            "stages": inv.stages,
            "countries": inv.countries,
            "check_min": inv.check_min,
            "check_max": inv.check_max,
        }


class MatchRunSubmitApi(APIView):
    throttle_classes = [SubmitThrottle]

    @extend_schema(
        summary="Submit a startup URL for matching",
        request=SubmitInputSerializer,
        responses={202: SubmitOutputSerializer, 200: SubmitOutputSerializer},
        examples=[OpenApiExample("submit", value={"url": "https://acme.example/"}, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        body = SubmitInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        submission = match_run_submit(url=body.validated_data["url"])
        run = submission.run
        data = SubmitOutputSerializer(
            {
                "run_id": run.run_id,
                "status": run.status,
                "canonical_url": run.canonical_url,
                "created": submission.created,
            }
        ).data
        return Response(data, status=202 if submission.created else 200)


class MatchRunDetailApi(APIView):
    @extend_schema(summary="A match run's status", responses=RunOutputSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        return Response(RunOutputSerializer(match_run_get(run_id=run_id)).data)


class MatchRunMatchesApi(APIView):
    @extend_schema(summary="A ready run's ranked investors", responses=MatchOutputSerializer(many=True))
    def get(self, request: Request, run_id: str) -> Response:
        run = match_run_get(run_id=run_id)
        if run.status == MatchRunStatus.ERROR:
            raise Conflict(f"The run failed: {run.last_error}", code="run_failed")
        if run.status != MatchRunStatus.READY:
            raise Conflict(f"The run is {run.status}; matches appear when it is ready.", code="run_not_ready")
        matches = MatchOutputSerializer(match_run_matches(run=run), many=True).data
        return Response({"run_id": str(run.run_id), "status": run.status, "matches": matches})


class MatchRunDebugApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(summary="A run's timeline (staff only)", responses=dict[str, Any])
    def get(self, request: Request, run_id: str) -> Response:
        run = match_run_get(run_id=run_id)
        timeline = match_run_timeline(run=run)
        return Response(
            {
                "run": RunOutputSerializer(run).data,
                "lease": {
                    "owner": run.lease_owner or None,
                    "token": str(run.lease_token) if run.lease_token else None,
                    "expires_at": run.lease_expires_at,
                },
                "attempts": run.attempts,
                "max_attempts": run.max_attempts,
                "rescues": run.rescues,
                "errors": [t["error"] for t in timeline if t["error"]],
                "durations": {
                    "queued_ms": _ms(run.created_at, run.started_at),
                    "processing_ms": _ms(run.started_at, run.finished_at),
                    "total_ms": run.duration_ms,
                },
                "timeline": timeline,
            }
        )


def _ms(start: Any, end: Any) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


class MatchHealthHourlyApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(summary="Per-hour run figures for the last 24 hours (staff only)", responses=dict[str, Any])
    def get(self, request: Request) -> Response:
        return Response({"hours": match_runs_hourly(hours=24)})
