from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from proposals.identity.services import profile_update
from proposals.models import (
    Conversation,
    Event,
    Follow,
    Match,
    Message,
    Profile,
    Proposal,
    ProposalStatus,
    ProposalVoter,
    QueuedProposal,
    SystemMetric,
    Vote,
    WalletNonce,
)
from proposals.vocab import INTERESTS
from proposals.voting.services import proposal_finalize_now


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ProfileAdminForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ("user", "display_name", "bio", "interests", "privacy", "is_active")

    def clean_interests(self) -> list[str]:
        values = self.cleaned_data["interests"]
        if not isinstance(values, list) or any(v not in INTERESTS for v in values):
            raise forms.ValidationError(f"A list of interests, each one of: {', '.join(INTERESTS)}.")
        return values


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("display_name", "user", "privacy", "is_active", "open_assignments", "wallet_address")
    list_filter = ("privacy", "is_active")
    search_fields = ("display_name", "user__username", "wallet_address")
    # The wallet is set only by a verified signature, and the load only by the services.
    readonly_fields = ("wallet_address", "wallet_verified_at", "open_assignments", "interest_mask")
    raw_id_fields = ("user",)

    form = ProfileAdminForm

    def get_readonly_fields(self, request: HttpRequest, obj: Profile | None = None) -> tuple[str, ...]:
        return (*self.readonly_fields, "user") if obj is not None else tuple(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Profile, form: Any, change: bool) -> None:
        """An edit goes through the service, which writes only the fields changed (and keeps
        the interest mask in step): a full save of the row this request read would write back
        a load or a wallet changed meanwhile (ops/LOCKING.md, rule 4)."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        editable = ("display_name", "bio", "interests", "privacy", "is_active")
        profile_update(
            user=obj.user, **{name: form.cleaned_data[name] for name in editable if name in form.changed_data}
        )


class VoterInline(admin.TabularInline):
    model = ProposalVoter
    fields = ("voter", "voted", "assigned_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


class VoteInline(admin.TabularInline):
    model = Vote
    fields = ("voter", "choice", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Proposal)
class ProposalAdmin(ReadOnly):
    list_display = ("public_id", "member_a", "member_b", "status", "compatibility", "yes_count", "no_count", "deadline")
    list_filter = ("status",)
    search_fields = ("public_id", "pair_hash", "member_a__username", "member_b__username")
    inlines = [VoterInline, VoteInline]
    actions = ["finalize_now"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.method in ("GET", "HEAD")  # viewable, with its votes; not editable

    @admin.action(description="Finalize the selected voting proposals now")
    def finalize_now(self, request: HttpRequest, queryset: QuerySet[Proposal]) -> None:
        done = sum(
            proposal_finalize_now(proposal_id=pk)
            for pk in queryset.filter(status=ProposalStatus.VOTING).values_list("pk", flat=True)
        )
        self.message_user(request, f"Finalized {done} proposal(s).", messages.SUCCESS)


@admin.register(QueuedProposal)
class GenerationQueueAdmin(ReadOnly):
    list_display = ("public_id", "member_a", "member_b", "compatibility", "created_at")
    ordering = ("-compatibility", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Proposal]:
        return super().get_queryset(request).filter(status=ProposalStatus.QUEUED)


@admin.register(Match)
class MatchAdmin(ReadOnly):
    list_display = (
        "public_id",
        "member_a",
        "member_b",
        "source",
        "event",
        "compatibility_score",
        "status",
        "decision_a",
        "decision_b",
        "expires_at",
    )
    list_filter = ("status", "source")
    list_select_related = ("member_a", "member_b", "event")
    search_fields = ("public_id", "member_a__username", "member_b__username")
    # At millions of matches an exact count per page view is the slow part of the list.
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("name", "starts_at", "ends_at", "created_at")
    search_fields = ("name",)
    date_hierarchy = "starts_at"


@admin.register(Follow)
class FollowAdmin(ReadOnly):
    list_display = ("follower", "followee", "created_at")
    list_select_related = ("follower", "followee")
    search_fields = ("follower__username", "followee__username")
    show_full_result_count = False


@admin.register(Conversation)
class ConversationAdmin(ReadOnly):
    list_display = ("public_id", "match", "created_at", "closed_at")


@admin.register(Message)
class MessageAdmin(ReadOnly):
    list_display = ("conversation", "sender", "created_at")


@admin.register(SystemMetric)
class SystemMetricAdmin(ReadOnly):
    list_display = (
        "recorded_at",
        "queue_depth",
        "active_voting",
        "approved",
        "rejected",
        "voters_assigned",
        "votes_cast",
    )
    date_hierarchy = "recorded_at"


@admin.register(WalletNonce)
class WalletNonceAdmin(ReadOnly):
    list_display = ("nonce", "created_at", "expires_at", "used_at")
