"""The queue worker's HTTP trigger (for operators and external schedulers), and the staff
views of discovery's two queues: health, and the dead letters with their requeue."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from discovery.health_queues import QUEUE_HEALTH, queue_dead_letters
from discovery.services import RUN_QUEUE_WORKER, queue_dead_letters_requeue, queue_worker_run
from matchplatform.exceptions import NotFound
from matchplatform.fields import StrictChoiceField, StrictIntegerField
from matchplatform.openapi import error_responses
from ops.topics import topics_all

LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 100, 20
TTL_MIN, TTL_MAX, TTL_DEFAULT = 10, 900, 120


class CanRunQueueWorker(BasePermission):
    """Staff, or a service account holding ``discovery.run_queue_worker`` (see
    ``manage.py service_token_create``)."""

    message = "Only staff or a service token with the run_queue_worker permission may run the queue worker."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_staff or user.has_perm(RUN_QUEUE_WORKER)))


class QueueWorkerInputSerializer(serializers.Serializer):
    topic = StrictChoiceField(choices=[], help_text="A worker topic (the schema lists them).")
    limit = StrictIntegerField(
        min_value=LIMIT_MIN, max_value=LIMIT_MAX, default=LIMIT_DEFAULT, help_text="Rows to lease at most."
    )
    ttl = StrictIntegerField(
        min_value=TTL_MIN, max_value=TTL_MAX, default=TTL_DEFAULT, help_text="The lease's length, in seconds."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Topics are registered in code when the apps are ready: read them now, not at import.
        topic = self.fields["topic"]
        assert isinstance(topic, StrictChoiceField)
        topic.choices = [t.name for t in topics_all()]


class QueueWorkerOutputSerializer(serializers.Serializer):
    processed = serializers.IntegerField(help_text="Rows handled and acked.")
    # The metaclass pops declared fields, so this does not shadow Serializer.errors at run time.
    errors = serializers.IntegerField(  # type: ignore[assignment]
        help_text="Rows whose handler failed (or whose lease was lost): retried later, or dead."
    )
    dead = serializers.IntegerField(help_text="Of the errors, rows out of attempts: now dead letters.")


class QueueWorkerApi(APIView):
    permission_classes = [CanRunQueueWorker]

    @extend_schema(
        summary="Run the queue worker once over one topic",
        description="Leases up to `limit` rows of the topic's queue for `ttl` seconds, handles them and "
        "answers the counts (processed + errors = rows leased). Topics: `discovery.events` (every event), "
        "`discovery.user-signup`, `discovery.interests-changed` (events of that topic), `discovery.run` "
        "(every discovery job), `discovery.refresh` (refresh jobs). Beat runs the same worker every minute "
        "for events and every 5 minutes for discovery jobs. For staff, or a service account's token "
        "(`manage.py service_token_create <username>`).",
        request={"application/json": QueueWorkerInputSerializer},
        responses={
            200: QueueWorkerOutputSerializer,
            **error_responses(
                400,
                401,
                403,
                d400="An unknown topic, or limit (1..100) or ttl (10..900) out of bounds or not an integer; "
                "the error names the field.",
                d401="No credentials, or a token that is not valid.",
                d403="Signed in, but neither staff nor a service account allowed to run the worker.",
            ),
        },
        examples=[
            OpenApiExample(
                "sign-up events", value={"topic": "discovery.user-signup", "limit": 20, "ttl": 120}, request_only=True
            ),
            OpenApiExample("counts", value={"processed": 18, "errors": 2, "dead": 1}, response_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        body = QueueWorkerInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        work = queue_worker_run(
            topic=body.validated_data["topic"], limit=body.validated_data["limit"], ttl=body.validated_data["ttl"]
        )
        data = {"processed": work.processed, "errors": work.errors, "dead": work.dead}
        return Response(QueueWorkerOutputSerializer(data).data)


QUEUE_NAME = OpenApiParameter(
    "queue_name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=sorted(QUEUE_HEALTH), description="The queue."
)


def _queue_name(name: str) -> str:
    if name not in QUEUE_HEALTH:
        raise NotFound(f"No discovery queue is named {name!r}; they are: {', '.join(sorted(QUEUE_HEALTH))}.")
    return name


class QueueHealthOutputSerializer(serializers.Serializer):
    queue = serializers.CharField(help_text="The ops queue's label.")
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="Rows per status: queued, processing, done, dead."
    )
    delayed = serializers.IntegerField(help_text="Queued rows waiting out a retry's backoff.")
    waiting = serializers.IntegerField(help_text="Claimable queued rows (the sample of the ages).")
    p95_age_seconds = serializers.FloatField(
        allow_null=True, help_text="95th percentile of how long claimable rows have waited (null: none waits)."
    )
    oldest_age_seconds = serializers.FloatField(allow_null=True)


class QueueHealthApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A discovery queue's health (staff only)",
        description="Rows per status, and the p95 and oldest age of the claimable queued rows (seconds since "
        "they became claimable). The runbook alerts when the discovery queue's p95 age passes 300 s.",
        parameters=[QUEUE_NAME],
        responses={200: QueueHealthOutputSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, queue_name: str) -> Response:
        health = QUEUE_HEALTH[_queue_name(queue_name)](include_done=True)
        return Response(QueueHealthOutputSerializer(health).data)


class DeadLetterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item_id = serializers.IntegerField(help_text="The dead row's id in its queue.")
    reason = serializers.CharField(help_text="attempts, rescues or permanent.")
    attempts = serializers.IntegerField()
    rescues = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    # The metaclass pops declared fields, so this does not shadow Serializer.errors at run time.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    created_at = serializers.DateTimeField()


class DeadLettersOutputSerializer(serializers.Serializer):
    dead_letters = DeadLetterSerializer(many=True)


class QueueDeadLettersApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A discovery queue's open dead letters, newest first (staff only)",
        parameters=[QUEUE_NAME],
        responses={200: DeadLettersOutputSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, queue_name: str) -> Response:
        letters = queue_dead_letters(name=_queue_name(queue_name), limit=100)
        return Response(DeadLettersOutputSerializer({"dead_letters": letters}).data)


class RequeueInputSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=StrictIntegerField(min_value=1), min_length=1, max_length=500, help_text="Dead letter ids."
    )


class RequeueOutputSerializer(serializers.Serializer):
    requeued = serializers.IntegerField(
        help_text="Rows put back to queued (letters of another queue, or already requeued, are skipped)."
    )


class QueueDeadLettersRequeueApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Requeue dead letters of a discovery queue (staff only)",
        parameters=[QUEUE_NAME],
        request={"application/json": RequeueInputSerializer},
        responses={200: RequeueOutputSerializer, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request, queue_name: str) -> Response:
        body = RequeueInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        count = queue_dead_letters_requeue(name=_queue_name(queue_name), dead_letter_ids=body.validated_data["ids"])
        return Response(RequeueOutputSerializer({"requeued": count}).data)
