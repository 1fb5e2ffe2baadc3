"""Flags, switches and samples in the admin, each with its history: who changed what, when,
from what, and why; any earlier version can be restored from there."""

from __future__ import annotations

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin
from waffle.admin import FlagAdmin, SampleAdmin, SwitchAdmin
from waffle.models import Sample, Switch

from flags.models import Flag


@admin.register(Flag)
class FlagHistoryAdmin(SimpleHistoryAdmin, FlagAdmin):
    list_display = (*FlagAdmin.list_display, "rollout_group", "safe_value")  # type: ignore[assignment]  # longer tuple
    history_list_display = ("everyone", "percent", "safe_value")


@admin.register(Switch)
class SwitchHistoryAdmin(SimpleHistoryAdmin, SwitchAdmin):
    history_list_display = ("active",)


@admin.register(Sample)
class SampleHistoryAdmin(SimpleHistoryAdmin, SampleAdmin):
    history_list_display = ("percent",)
