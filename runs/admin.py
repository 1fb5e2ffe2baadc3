from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from runs.models import Investor, MatchRun, MatchRunArchive, Startup, StartupInvestorMatch
from runs.services import investor_save


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

    def save_model(self, request: HttpRequest, obj: Investor, form: object, change: bool) -> None:
        # Through the service: the masks the engine scores on follow the lists, and the
        # workers learn that their in-memory corpus is stale.
        investor_save(investor=obj)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Past runs' matches point at investors; deleting one would rewrite history.
        return False


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
        "error_code",
        "attempts",
        "rescues",
        "match_count",
        "duration_ms",
        "created_at",
    )
    list_filter = ("status", "error_code")
    search_fields = ("run_id", "canonical_url")
    readonly_fields = [f.name for f in MatchRun._meta.fields]
    inlines = [MatchInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Runs leave the hot table only through the archive, never by deletion.
        return False


@admin.register(MatchRunArchive)
class MatchRunArchiveAdmin(admin.ModelAdmin):
    list_display = ("run_id", "canonical_url", "status", "created_at", "archived_at")
    search_fields = ("run_id", "canonical_url")
    readonly_fields = ("run_id", "canonical_url", "status", "created_at", "finished_at", "payload", "archived_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
