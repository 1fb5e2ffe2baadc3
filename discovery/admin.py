"""Discovery's catalog and logs in the admin (read-mostly: decisions and signals are data)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from discovery.health_queues import QueueHealth, discovery_queue_health, events_queue_health
from discovery.models import (
    Candidate,
    Category,
    DiscoveryEvent,
    DiscoveryJob,
    Gap,
    IntentSignal,
    Interest,
    InterestCategory,
    LearningEvent,
)


@admin.register(Interest)
class InterestAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")


class InterestCategoryInline(admin.TabularInline):
    model = InterestCategory
    extra = 0


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("slug", "name")
    inlines = [InterestCategoryInline]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "kind", "popularity", "published_at", "active")
    list_filter = ("kind", "active", "category")
    search_fields = ("name",)


@admin.register(Gap)
class GapAdmin(admin.ModelAdmin):
    list_display = ("interest", "candidates_found", "candidates_needed", "updated_at")


@admin.register(LearningEvent)
class LearningEventAdmin(admin.ModelAdmin):
    list_display = ("decision_id", "user", "policy_version", "chosen", "p_exp", "explored", "reward", "decided_at")
    list_filter = ("policy_version", "explored", "randomized")
    readonly_fields = [f.name for f in LearningEvent._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(IntentSignal)
class IntentSignalAdmin(admin.ModelAdmin):
    list_display = ("user", "candidate", "kind", "decision", "created_at")
    list_filter = ("kind",)
    readonly_fields = ("user", "candidate", "kind", "decision", "created_at")

    def has_add_permission(self, request: object) -> bool:
        return False


def health_title(*, name: str, health: QueueHealth) -> str:
    """A queue's health in one line, for the top of its admin list."""
    counts = ", ".join(f"{status} {n}" for status, n in health["counts"].items())
    p95 = health["p95_age_seconds"]
    age = "nothing waiting" if p95 is None else f"p95 age {p95:.0f} s, oldest {health['oldest_age_seconds']:.0f} s"
    return f"{name}: {counts}; delayed {health['delayed']}; {age}"


class QueueRowAdmin(admin.ModelAdmin):
    """A lease queue's rows, read-only (the queue writes them), with the queue's health as the
    list's title. Dead rows are requeued from Ops > Dead letters (that action covers every
    queue, discovery's two included)."""

    queue_name = ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def queue_health(self) -> QueueHealth:
        raise NotImplementedError

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        title = health_title(name=self.queue_name, health=self.queue_health())
        return super().changelist_view(request, {**(extra_context or {}), "title": title})


@admin.register(DiscoveryJob)
class DiscoveryJobAdmin(QueueRowAdmin):
    queue_name = "Discovery queue"
    list_display = ("id", "topic", "user", "interest", "status", "attempts", "candidates_found", "created_at")
    list_filter = ("status", "topic")
    readonly_fields = [f.name for f in DiscoveryJob._meta.fields]

    def queue_health(self) -> QueueHealth:
        return discovery_queue_health(include_done=True)


@admin.register(DiscoveryEvent)
class DiscoveryEventAdmin(QueueRowAdmin):
    queue_name = "Events queue"
    list_display = ("id", "topic", "user", "status", "attempts", "last_error", "created_at", "finished_at")
    list_filter = ("status", "topic")
    search_fields = ("topic", "user__username")
    readonly_fields = [f.name for f in DiscoveryEvent._meta.fields]

    def queue_health(self) -> QueueHealth:
        return events_queue_health(include_done=True)
