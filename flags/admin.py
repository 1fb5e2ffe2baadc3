"""Flags, switches and samples in the admin, each with its history: who changed what, when,
from what, and why (a *reason* field on every form); any earlier version can be restored."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin
from waffle.admin import FlagAdmin, SampleAdmin, SwitchAdmin
from waffle.models import Sample, Switch

from flags.models import Flag

REASON_MAX = 100  # django-simple-history's history_change_reason


class ReasonForm(forms.ModelForm):
    change_reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=REASON_MAX,
        help_text="Why this change (kept in the history with who and when).",
    )


class ReasonAdmin(SimpleHistoryAdmin):
    """Puts the form's reason on the history row the save writes."""

    form: type[forms.ModelForm[Any]] = ReasonForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj._change_reason = form.cleaned_data.get("change_reason") or None
        super().save_model(request, obj, form, change)


@admin.register(Flag)
class FlagHistoryAdmin(ReasonAdmin, FlagAdmin):
    list_display = (*FlagAdmin.list_display, "rollout_group", "safe_value")  # type: ignore[assignment]  # longer tuple
    history_list_display = ("everyone", "percent", "safe_value")


@admin.register(Switch)
class SwitchHistoryAdmin(ReasonAdmin, SwitchAdmin):
    history_list_display = ("active",)


@admin.register(Sample)
class SampleHistoryAdmin(ReasonAdmin, SampleAdmin):
    history_list_display = ("percent",)
