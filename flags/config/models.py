"""Typed, versioned config: one row per name holding its current value and version; every
write is a history row (who, when, the value as it became, the reason), and those rows are
the versions a rollback restores."""

from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords


class ConfigValue(models.Model):
    name = models.CharField(max_length=100, unique=True)
    value = models.JSONField(help_text="The value, as validated by the name's schema.")
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(table_name="flags_historicalconfigvalue")

    class Meta:
        app_label = "flags"
        ordering = ["name"]
        verbose_name = "config value"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
