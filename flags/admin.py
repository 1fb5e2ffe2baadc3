"""Flags, switches, samples and config in the admin, each with its history: who changed what,
when, from what, and why (a *reason* field on every form). The change page lists every
earlier version with a one-click *Restore* (a new change, with its own history row)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin
from waffle.admin import FlagAdmin, SampleAdmin, SwitchAdmin
from waffle.models import Sample, Switch

from flags.config.models import ConfigValue
from flags.config.registry import config_spec, config_specs
from flags.config.services import config_rollback, config_set, config_validate
from flags.models import Flag
from flags.rollouts import admin as _rollouts_admin  # noqa: F401  # registers the rollout admin
from matchplatform.exceptions import ApplicationError

if TYPE_CHECKING:
    from django.template.response import _TemplateForResponseT

REASON_MAX = 100  # django-simple-history's history_change_reason


class ReasonForm(forms.ModelForm):
    change_reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=REASON_MAX,
        help_text="Why this change (kept in the history with who and when).",
    )


class VersionsAdmin(SimpleHistoryAdmin):
    """Puts the form's reason on the history row the save writes, and lists the versions
    with a one-click restore on the change page."""

    form: type[forms.ModelForm[Any]] = ReasonForm
    change_form_template: ClassVar[_TemplateForResponseT | None] = "admin/flags/change_form_versions.html"
    version_fields: tuple[str, ...] = ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj._change_reason = form.cleaned_data.get("change_reason") or None
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        restore = require_POST(self.admin_site.admin_view(self.restore_view))
        return [
            path("<path:object_id>/restore/<int:history_id>/", restore, name="%s_%s_restore" % info),  # noqa: UP031
            *super().get_urls(),
        ]

    def version_label(self, record: Any) -> str:
        return f"#{record.history_id}"

    def version_summary(self, record: Any) -> str:
        return ", ".join(f"{name}={getattr(record, name)}" for name in self.version_fields)

    def versions(self, obj: Any) -> list[dict[str, Any]]:
        records = list(obj.history.select_related("history_user").order_by("-history_id")[:50])
        info = self.opts.app_label, self.opts.model_name
        return [
            {
                "history_id": record.history_id,
                "label": self.version_label(record),
                "when": record.history_date,
                "who": record.history_user.get_username() if record.history_user else "",
                "why": record.history_change_reason or "",
                "summary": self.version_summary(record),
                "current": index == 0,
                "restore_url": reverse("admin:%s_%s_restore" % info, args=[obj.pk, record.history_id]),  # noqa: UP031
            }
            for index, record in enumerate(records)
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra = {**(extra_context or {}), "versions": self.versions(obj) if obj is not None else []}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def restore(self, request: HttpRequest, obj: Any, record: Any) -> None:
        restored = record.instance
        restored._change_reason = f"restore {self.version_label(record)}"
        restored._history_user = request.user
        restored.save()

    def restore_view(self, request: HttpRequest, object_id: str, history_id: int) -> HttpResponse:
        obj = get_object_or_404(self.model, pk=object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        record = get_object_or_404(obj.history, history_id=history_id)
        try:
            self.restore(request, obj, record)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Restored {self.version_label(record)}.", messages.SUCCESS)
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:%s_%s_change" % info, args=[obj.pk]))  # noqa: UP031


@admin.register(Flag)
class FlagHistoryAdmin(VersionsAdmin, FlagAdmin):
    list_display = (*FlagAdmin.list_display, "rollout_group", "safe_value")  # type: ignore[assignment]  # longer tuple
    history_list_display = ("everyone", "percent", "safe_value")
    version_fields = ("everyone", "percent", "safe_value")


@admin.register(Switch)
class SwitchHistoryAdmin(VersionsAdmin, SwitchAdmin):
    history_list_display = ("active",)
    version_fields = ("active",)


@admin.register(Sample)
class SampleHistoryAdmin(VersionsAdmin, SampleAdmin):
    history_list_display = ("percent",)
    version_fields = ("percent",)


# --- config ---------------------------------------------------------------------------------


class ConfigValueForm(ReasonForm):
    name = forms.ChoiceField(choices=())
    value = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), help_text="JSON, validated by the name's schema."
    )

    class Meta:
        model = ConfigValue
        fields = ("name", "value")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name_field: Any = self.fields["name"]
        name_field.choices = [(spec.name, spec.name) for spec in config_specs()]
        if self.instance.pk:
            name_field.disabled = True
            try:
                spec = config_spec(self.instance.name)
            except KeyError:
                return
            self.fields["value"].help_text = "Schema: " + json.dumps(spec.schema.model_json_schema())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "name" in cleaned and "value" in cleaned:
            try:
                cleaned["value"] = config_validate(cleaned["name"], cleaned["value"]).model_dump(mode="json")
            except ApplicationError as exc:
                for field, problems in exc.fields.items():
                    for problem in problems:
                        self.add_error("value", f"{field}: {problem}")
        return cleaned


@admin.register(ConfigValue)
class ConfigValueAdmin(VersionsAdmin):
    form = ConfigValueForm
    list_display = ("name", "version", "value", "updated_at")
    readonly_fields = ("version",)
    history_list_display = ("version", "value")
    version_fields = ("value",)

    def version_label(self, record: Any) -> str:
        return f"v{record.version}"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Through the service: one version per write, validated, with who and why.
        saved = config_set(
            form.cleaned_data["name"],
            form.cleaned_data["value"],
            reason=form.cleaned_data.get("change_reason") or "",
            actor=request.user,  # type: ignore[arg-type]
        )
        obj.pk, obj.version = saved.pk, saved.version

    def restore(self, request: HttpRequest, obj: Any, record: Any) -> None:
        config_rollback(obj.name, version=record.version, actor=request.user)  # type: ignore[arg-type]
