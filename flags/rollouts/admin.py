"""Rollouts in the admin: list, create (stages and gates checked, errors named), one-click
Start / Pause / Resume / Advance / Roll back on the change page (each calls the service, as
the API would), the decision timeline with its figures, and the history of every change.

Registered on import; ``flags/admin.py`` imports this module."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from flags.models import Flag
from flags.rollouts import services
from flags.rollouts.decide import GateSpecError, stages_parse
from flags.rollouts.models import Rollout, RolloutDecision
from flags.rollouts.selectors import rollout_timeline
from flags.rollouts.states import RolloutState, rollout_actions_allowed
from flags.snapshot import stamp_bump
from matchplatform.exceptions import ApplicationError

REASON_MAX = services.REASON_MAX

CONFIG_FIELDS = (
    "name",
    "flag",
    "stages",
    "gates",
    "min_dwell_seconds",
    "min_sample",
    "min_gate_sample",
    "breaches_to_rollback",
    "alpha",
    "rollback_action",
)
STATUS_FIELDS = (
    "state",
    "stage_index",
    "epoch",
    "stage_started_at",
    "last_tick_at",
    "breach_streaks",
    "alert",
    "created_by",
    "created_at",
)
# The configuration may change while nothing is being decided on it.
EDITABLE_STATES = (RolloutState.DRAFT, RolloutState.PAUSED, RolloutState.ROLLED_BACK)

# The buttons on the change page: action -> (label, service).
BUTTONS: dict[str, tuple[str, Any]] = {
    "start": ("Start", services.rollout_start),
    "restart": ("Restart", services.rollout_start),
    "pause": ("Pause", services.rollout_pause),
    "resume": ("Resume", services.rollout_resume),
    "advance": ("Advance", services.rollout_advance),
    "rollback": ("Roll back", services.rollout_rollback),
}


class RolloutForm(forms.ModelForm):  # type: ignore[type-arg]
    change_reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=REASON_MAX,
        help_text="Why this change (kept in the history with who and when).",
    )

    class Meta:
        model = Rollout
        fields = CONFIG_FIELDS

    def clean_stages(self) -> Any:
        value = self.cleaned_data.get("stages")
        try:
            stages_parse(value)
        except GateSpecError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value

    def clean_gates(self) -> Any:
        value = self.cleaned_data.get("gates")
        try:
            services.gate_specs(value if value is not None else [])
        except GateSpecError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value if value is not None else []

    def clean_alpha(self) -> Any:
        value = self.cleaned_data.get("alpha")
        if value is None or not 0 < value < 1:
            raise forms.ValidationError("alpha is a probability strictly between 0 and 1, e.g. 0.05.")
        return value

    def clean_breaches_to_rollback(self) -> Any:
        value = self.cleaned_data.get("breaches_to_rollback")
        if value is None or value < 1:
            raise forms.ValidationError("At least 1.")
        return value


@admin.register(Rollout)
class RolloutAdmin(SimpleHistoryAdmin):
    form = RolloutForm
    change_form_template = "admin/flags/rollout/change_form.html"
    list_display = ("name", "flag", "state", "stage_display", "stage_started_at", "last_tick_at", "last_decision")
    list_filter = ("state",)
    search_fields = ("name", "flag__name")
    history_list_display = ("state", "stage_index", "stages")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        config = (*CONFIG_FIELDS, "change_reason") if self._editable(obj) else CONFIG_FIELDS
        if obj is None:
            return [(None, {"fields": config})]
        return [(None, {"fields": config}), ("Status", {"fields": STATUS_FIELDS})]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if self._editable(obj):
            return STATUS_FIELDS
        return (*CONFIG_FIELDS, *STATUS_FIELDS)

    @staticmethod
    def _editable(obj: Any) -> bool:
        return obj is None or obj.state in EDITABLE_STATES

    @admin.display(description="Stage")
    def stage_display(self, obj: Rollout) -> str:
        try:
            stages = stages_parse(obj.stages)
        except GateSpecError:
            return "?"
        return f"{obj.stage_index + 1} of {len(stages)} ({obj.percent:g} %)"

    @admin.display(description="Last decision")
    def last_decision(self, obj: Rollout) -> str:
        decision = obj.decisions.order_by("-decided_at", "-id").first()
        return f"{decision.decision}: {decision.reason[:80]}" if decision else "-"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj._change_reason = form.cleaned_data.get("change_reason") or ("created" if not change else None)
        if not change:
            obj.created_by = request.user
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            stamp_bump()

    # -- the buttons -----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = (self.opts.app_label, self.opts.model_name)
        return [
            path(
                "<path:object_id>/act/",
                self.admin_site.admin_view(self.act_view),
                name="{}_{}_act".format(*info),
            ),
            *super().get_urls(),
        ]

    def act_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        rollout = self.get_object(request, object_id)  # None for an unknown or malformed id
        if rollout is None:
            raise Http404("No such rollout.")
        if not self.has_change_permission(request, rollout):
            messages.error(request, "You may not change rollouts.")
            return self._back(rollout)
        action = request.POST.get("action", "")
        button = BUTTONS.get(action)
        if button is None:
            messages.error(request, f"Unknown action {action!r}.")
            return self._back(rollout)
        label, service = button
        reason = (request.POST.get("reason") or "").strip()[:REASON_MAX]
        try:
            service(rollout_id=rollout.pk, actor=request.user, reason=reason)
        except ApplicationError as exc:
            fields = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in exc.fields.items())
            messages.error(request, f"{label}: {exc.message}" + (f" ({fields})" if fields else ""))
        else:
            rollout.refresh_from_db()
            serving = float(Flag.objects.get(pk=rollout.flag_id).percent or 0)  # what the flag serves now
            state = rollout.get_state_display().lower()
            messages.success(request, f"{label}: the rollout is {state} at {serving:g} %.")
        return self._back(rollout)

    def _back(self, rollout: Rollout) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:flags_rollout_change", args=[rollout.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        rollout = Rollout.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if rollout is not None:
            allowed = rollout_actions_allowed(state=rollout.state)
            extra["rollout_buttons"] = [(action, BUTTONS[action][0]) for action in BUTTONS if action in allowed]
            extra["rollout_act_url"] = reverse("admin:flags_rollout_act", args=[rollout.pk])
            extra["rollout_decisions"] = [
                (d, json.dumps(d.figures, indent=2, sort_keys=True)) for d in rollout_timeline(rollout_id=rollout.pk)
            ]
            extra["rollout_decisions_url"] = (
                reverse("admin:flags_rolloutdecision_changelist") + f"?rollout__id__exact={rollout.pk}"
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)


@admin.register(RolloutDecision)
class RolloutDecisionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every decision, read only (the controller's and operators')."""

    list_display = ("decided_at", "rollout", "decision", "stage_index", "percent", "reason_short", "actor")
    list_filter = ("decision", "rollout")
    list_select_related = ("rollout", "actor")
    search_fields = ("reason", "rollout__name")
    date_hierarchy = "decided_at"
    readonly_fields = (
        "rollout",
        "decided_at",
        "decision",
        "reason",
        "figures",
        "stage_index",
        "percent",
        "epoch",
        "actor",
        "tick_key",
    )

    @admin.display(description="Reason")
    def reason_short(self, obj: RolloutDecision) -> str:
        return format_html("<span title='{}'>{}</span>", obj.reason, obj.reason[:120])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
