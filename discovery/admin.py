"""Discovery's catalog and logs in the admin (read-mostly: decisions and signals are data)."""

from __future__ import annotations

from django.contrib import admin

from discovery.models import (
    Candidate,
    Category,
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


@admin.register(DiscoveryJob)
class DiscoveryJobAdmin(admin.ModelAdmin):
    list_display = ("id", "topic", "user", "interest", "status", "attempts", "candidates_found", "created_at")
    list_filter = ("status", "topic")
    readonly_fields = [f.name for f in DiscoveryJob._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
