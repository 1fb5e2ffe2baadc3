from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ops.models import DeadLetter, InvariantResult, QueueHistory, WorkerHeartbeat
from ops.services import dead_letters_requeue


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(QueueHistory)
class QueueHistoryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "queue", "item_id", "event", "from_status", "to_status", "lease_owner", "attempt")
    list_filter = ("queue", "event", "to_status")
    search_fields = ("item_id", "lease_owner")
    date_hierarchy = "created_at"


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "queue", "item_id", "reason", "attempts", "rescues", "short_error", "requeued_at")
    list_filter = ("queue", "reason", ("requeued_at", admin.EmptyFieldListFilter))
    search_fields = ("item_id", "last_error")
    actions = ["requeue"]

    @admin.display(description="last error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.last_error[:120]

    @admin.action(description="Requeue the selected dead letters")
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        selected = list(queryset.filter(requeued_at__isnull=True).values_list("id", flat=True))
        count = dead_letters_requeue(dead_letter_ids=selected)
        self.message_user(request, f"Requeued {count} row(s).", messages.SUCCESS)
        if count < len(selected):
            self.message_user(
                request,
                f"{len(selected) - count} row(s) were not requeued: no longer dead, or refused by their queue "
                "(for a match run: its URL already has an active run).",
                messages.WARNING,
            )


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("worker_id", "hostname", "pid", "queues", "processed", "failed", "leases_lost", "last_seen")
    search_fields = ("worker_id", "hostname")


@admin.register(InvariantResult)
class InvariantResultAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "name", "app", "state", "value", "detail")
    list_filter = ("state", "app", "name")
