from __future__ import annotations

from django.contrib import admin

from runs.models import Investor, MatchRun, MatchRunArchive, Startup, StartupInvestorMatch


@admin.register(Startup)
class StartupAdmin(admin.ModelAdmin):
    list_display = ("name", "canonical_url", "stage", "country", "quality_score", "source")
    list_filter = ("source", "stage", "country")
    search_fields = ("name", "canonical_url")


@admin.register(Investor)
class InvestorAdmin(admin.ModelAdmin):
    list_display = ("name", "check_min", "check_max", "activity")
    search_fields = ("name",)
    readonly_fields = ("sector_mask", "stage_mask", "country_mask")


class MatchInline(admin.TabularInline):
    model = StartupInvestorMatch
    extra = 0
    can_delete = False
    fields = ("rank", "investor", "score", "reasons")
    readonly_fields = fields
    raw_id_fields = ("investor",)


@admin.register(MatchRun)
class MatchRunAdmin(admin.ModelAdmin):
    list_display = (
        "run_id",
        "canonical_url",
        "status",
        "attempts",
        "rescues",
        "match_count",
        "duration_ms",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("run_id", "canonical_url")
    readonly_fields = [f.name for f in MatchRun._meta.fields]
    inlines = [MatchInline]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(MatchRunArchive)
class MatchRunArchiveAdmin(admin.ModelAdmin):
    list_display = ("run_id", "canonical_url", "status", "created_at", "archived_at")
    search_fields = ("run_id", "canonical_url")
    readonly_fields = ("run_id", "canonical_url", "status", "created_at", "finished_at", "payload", "archived_at")
