"""The runs API. Submitting a URL and reading a run are public (a founder needs no account);
the debug timeline and the hourly figures are for staff. Every status an operation can
answer is declared, and the request schema says exactly what the server accepts."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import Conflict, ErrorCode
from matchplatform.openapi import error_responses
from matchplatform.throttling import SettingRateThrottle
from runs.canonical import URL_MAX_LENGTH
from runs.models import MatchRun, MatchRunStatus
from runs.selectors import (
    match_run_error_public,
    match_run_get,
    match_run_matches,
    match_run_refused_input,
    match_run_timeline,
    match_runs_hourly,
)
from runs.services import match_run_submit

# Everything the server can accept matches this; what it still refuses (a private host,
# a name that percent-encodes past the limit) is a 400 that names the rule.
_URL_PATTERN = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://\S+\s*$"


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": URL_MAX_LENGTH,
        "pattern": _URL_PATTERN,
        "description": "The startup's website: an http or https URL with a public host name, at most "
        f"{URL_MAX_LENGTH} characters, no user name or password.",
        "example": "https://acme.example/",
    }
)
class UrlStringField(serializers.Field):
    """A JSON string, passed on as typed: anything else (a number, an object, null) is a 400
    ``invalid_type``; the service validates the URL itself and names what is wrong."""

    default_error_messages = {"invalid_type": "URL must be a string."}

    def run_validation(self, data: Any = empty) -> Any:
        if data is not empty and not isinstance(data, str):
            self.fail("invalid_type")
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> str:
        return str(data)

    def to_representation(self, value: Any) -> str:
        return str(value)


class SubmitInputSerializer(serializers.Serializer):
    url = UrlStringField()


class SubmitOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=MatchRunStatus.values)
    canonical_url = serializers.CharField()
    created = serializers.BooleanField(help_text="false: the URL already had an active run, and this is it.")


class StartupSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    sectors = serializers.ListField(child=serializers.CharField())


class RunOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=MatchRunStatus.values)
    canonical_url = serializers.CharField()
    startup = StartupSerializer(allow_null=True)
    match_count = serializers.IntegerField()
    attempts = serializers.IntegerField()
    rescues = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    elapsed_ms = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField(
        help_text="What went wrong with the last attempt, in words about the submitted URL."
    )
    error_code = serializers.SerializerMethodField(help_text="The last failure's error code, for programs.")

    def get_elapsed_ms(self, run: MatchRun) -> int:
        if run.duration_ms is not None:
            return run.duration_ms
        end = run.finished_at or timezone.now()
        return max(int((end - run.created_at).total_seconds() * 1000), 0)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, run: MatchRun) -> str | None:
        return match_run_error_public(run=run)[0]

    @extend_schema_field(serializers.ChoiceField(choices=[c.value for c in ErrorCode], allow_null=True))
    def get_error_code(self, run: MatchRun) -> str | None:
        return match_run_error_public(run=run)[1]


class InvestorSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    sectors = serializers.ListField(child=serializers.CharField())
    stages = serializers.ListField(child=serializers.CharField())
    countries = serializers.ListField(child=serializers.CharField())
    check_min = serializers.IntegerField()
    check_max = serializers.IntegerField()


class MatchOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    score = serializers.FloatField()
    reasons = serializers.ListField(child=serializers.CharField())
    investor = InvestorSerializer()


class MatchesOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[MatchRunStatus.READY.value])
    matches = MatchOutputSerializer(many=True)


class TimelineStepSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    event = serializers.CharField()
    from_status = serializers.CharField(allow_blank=True)
    to_status = serializers.CharField()
    lease_owner = serializers.CharField(allow_blank=True)
    lease_token = serializers.UUIDField(allow_null=True)
    attempt = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)


class LeaseSerializer(serializers.Serializer):
    owner = serializers.CharField(allow_null=True)
    token = serializers.UUIDField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class DurationsSerializer(serializers.Serializer):
    queued_ms = serializers.IntegerField(allow_null=True)
    processing_ms = serializers.IntegerField(allow_null=True)
    total_ms = serializers.IntegerField(allow_null=True)


class DebugOutputSerializer(serializers.Serializer):
    run = RunOutputSerializer()
    last_error = serializers.CharField(allow_blank=True, help_text="The operators' detail of the last failure.")
    refused_input = serializers.BooleanField(help_text="The run failed because of its input (kept out of error rates).")
    lease = LeaseSerializer()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    rescues = serializers.IntegerField()
    # The metaclass pops declared fields, so this does not shadow Serializer.errors at run time.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    durations = DurationsSerializer()
    timeline = TimelineStepSerializer(many=True)


class HourSerializer(serializers.Serializer):
    hour = serializers.CharField(help_text="The hour of submission (UTC).")
    total = serializers.IntegerField(help_text="Runs submitted in the hour.")
    avg_duration_ms = serializers.FloatField(allow_null=True)
    p95_duration_ms = serializers.IntegerField(allow_null=True)
    successes = serializers.IntegerField()
    errors = serializers.IntegerField(  # type: ignore[assignment]  # a declared field, not Serializer.errors
        help_text="Runs that failed on the platform's side."
    )
    refused_inputs = serializers.IntegerField(
        help_text="Runs refused because of their input (a host that does not resolve, a page that is gone)."
    )
    error_rate = serializers.FloatField(help_text="errors / (successes + errors); refused inputs are left out.")
    avg_matches = serializers.FloatField(allow_null=True)


class HourlyOutputSerializer(serializers.Serializer):
    hours = HourSerializer(many=True)


RUN_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The run's id.")


class MatchRunSubmitApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = "match_submit"

    @extend_schema(
        summary="Submit a startup URL for matching",
        request={"application/json": SubmitInputSerializer},
        responses={
            202: SubmitOutputSerializer,
            200: SubmitOutputSerializer,
            **error_responses(
                400,
                401,
                403,
                409,
                413,
                415,
                d400="The body is not a JSON object with a string url, or the URL is refused: not http(s), no "
                "host, a user name or password, over 2,048 characters, or a loopback, private, link-local, "
                "multicast or reserved address (or localhost). The code names the rule.",
                d401="Credentials were sent and are not valid (anonymous submissions need none).",
                d403="A signed-in browser session without its CSRF token.",
                d409="The URL's run is changing state at this instant (code busy); try again.",
            ),
        },
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
    permission_classes = [AllowAny]

    @extend_schema(
        summary="A match run's status",
        parameters=[RUN_ID],
        responses={
            200: RunOutputSerializer,
            **error_responses(401, 404, d401="Credentials were sent and are not valid."),
        },
    )
    def get(self, request: Request, run_id: str) -> Response:
        return Response(RunOutputSerializer(match_run_get(run_id=run_id)).data)


class MatchRunMatchesApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="A ready run's ranked investors",
        parameters=[RUN_ID],
        responses={
            200: MatchesOutputSerializer,
            **error_responses(
                401,
                404,
                409,
                d401="Credentials were sent and are not valid.",
                d409="The run is not ready yet (run_not_ready) or failed (run_failed, with what is wrong).",
            ),
        },
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = match_run_get(run_id=run_id)
        if run.status == MatchRunStatus.ERROR:
            reason, _ = match_run_error_public(run=run)
            raise Conflict(f"The run failed: {reason}", code=ErrorCode.RUN_FAILED)
        if run.status != MatchRunStatus.READY:
            raise Conflict(f"The run is {run.status}; matches appear when it is ready.", code=ErrorCode.RUN_NOT_READY)
        data = {"run_id": run.run_id, "status": run.status, "matches": match_run_matches(run=run)}
        return Response(MatchesOutputSerializer(data).data)


class MatchRunDebugApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A run's timeline, with the operators' error detail (staff only)",
        parameters=[RUN_ID],
        responses={200: DebugOutputSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = match_run_get(run_id=run_id)
        timeline = match_run_timeline(run=run)
        data = {
            "run": run,
            "last_error": run.last_error,
            "refused_input": match_run_refused_input(run=run),
            "lease": {
                "owner": run.lease_owner or None,
                "token": run.lease_token,
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
        return Response(DebugOutputSerializer(data).data)


def _ms(start: Any, end: Any) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


class MatchHealthHourlyApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Per-hour run figures for the last 24 hours (staff only)",
        description="Refused inputs (a host that does not resolve or points inside, a page that is gone, not "
        "HTML or too large) are counted apart and left out of errors and error_rate.",
        responses={200: HourlyOutputSerializer, **error_responses(403)},
    )
    def get(self, request: Request) -> Response:
        return Response(HourlyOutputSerializer({"hours": match_runs_hourly(hours=24)}).data)
