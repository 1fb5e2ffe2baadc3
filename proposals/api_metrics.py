"""``GET /api/matches/metrics``: the matches' business metrics, for staff."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.exceptions import ErrorCode, InvalidInput
from matchplatform.openapi import error_responses
from proposals.matches.metrics import DAYS_DEFAULT, DAYS_MAX, MUTUAL_SAMPLE_SIZE, days_parse, match_metrics

PARAMETERS = ("days",)


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Midnight UTC of the window's first day (inclusive).")
    end = serializers.DateTimeField(help_text="The database's clock when the figures were computed.")
    timezone = serializers.CharField(help_text="The days are UTC days.")


class ExpiredDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    expired = serializers.IntegerField(help_text="Matches that expired that day (by decided_at).")


class FinishedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    expired = serializers.IntegerField()
    total = serializers.IntegerField()


class MutualBucketSerializer(serializers.Serializer):
    # The metaclass pops declared fields, so this does not shadow Field.label at run time.
    label = serializers.CharField()  # type: ignore[assignment]
    min = serializers.IntegerField(help_text="Fewest shared connections in this bucket.")
    max = serializers.IntegerField(allow_null=True, help_text="Most shared connections in this bucket; null: no limit.")
    matches = serializers.IntegerField(help_text="Sampled matches in this bucket.")


class MutualSerializer(serializers.Serializer):
    sample_size = serializers.IntegerField(help_text="Sampled matches: the newest created in the window.")
    sample_limit = serializers.IntegerField(help_text="The most the sample takes.")
    buckets = MutualBucketSerializer(many=True)


class MatchMetricsSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    window = WindowSerializer()
    expired_per_day = ExpiredDaySerializer(many=True, help_text="Every day of the window, oldest first.")
    finished = FinishedSerializer(help_text="Matches decided in the window, by outcome.")
    expiration_rate = serializers.FloatField(allow_null=True, help_text="expired / total finished; null if none.")
    avg_response_seconds = serializers.FloatField(
        allow_null=True,
        help_text="Mean time from a match's creation to each member's answer, over matches decided in the window.",
    )
    responses = serializers.IntegerField(help_text="Answers the average is over.")
    mutual_connections = MutualSerializer()


class MatchMetricsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Matches' business metrics (staff only)",
        description=(
            "Over the last `days` UTC days by the database's clock (today included): matches expired per day, "
            "matches finished by outcome and the expiration rate, the average time members take to answer, and "
            f"the distribution of mutual connections over the newest (up to {MUTUAL_SAMPLE_SIZE}) matches created "
            "in the window. Cached for 60 seconds per `days`."
        ),
        parameters=[
            OpenApiParameter(
                "days",
                {"type": "integer", "minimum": 1, "maximum": DAYS_MAX, "default": DAYS_DEFAULT},
                description=f"1 to {DAYS_MAX}; {DAYS_DEFAULT} if not given.",
            )
        ],
        responses={
            200: MatchMetricsSerializer,
            **error_responses(
                400,
                403,
                d400=f"days is not a whole number from 1 to {DAYS_MAX} (or is empty, or given twice), "
                "or an unknown parameter.",
                d403="Signed in, but not staff.",
            ),
        },
        examples=[
            OpenApiExample(
                "bad days",
                value={
                    "error": {
                        "code": "invalid_parameter",
                        "message": "days is a whole number from 1 to 365.",
                        "fields": {"days": ["days is a whole number from 1 to 365."]},
                    }
                },
                response_only=True,
                status_codes=["400"],
            )
        ],
    )
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - set(PARAMETERS))
        if unknown:
            raise InvalidInput(
                f"Unknown parameter {unknown[0]!r}. This endpoint takes: {', '.join(PARAMETERS)}.",
                code=ErrorCode.INVALID_PARAMETER,
                fields={unknown[0]: ["Unknown parameter."]},
            )
        days = days_parse(request.query_params.getlist("days"))
        return Response(match_metrics(days=days))
