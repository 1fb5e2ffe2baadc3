"""The flag model: waffle's own (everyone, users, groups, staff, superusers, authenticated,
testing, languages, its admin and template tags keep working), with what waffle lacks:

- a **sticky percentage**: a unit (a member's id, else a stable anonymous id) is in the
  rollout when its bucket ``MurmurHash3_x86_32("<group>:<unit>") % 100 + 1`` is at most the
  percentage, the same in a request, a task, a command or a replay (waffle draws a coin and
  keeps it in a cookie);
- a **safe value**, what the flag reads while the ``global.safe_mode`` switch is on.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.http import HttpRequest
from simple_history import register
from simple_history.models import HistoricalRecords
from waffle.models import AbstractUserFlag, Sample, Switch


class Flag(AbstractUserFlag):
    # Waffle's percentage stops at 99.9; a sticky bucket is 1..100, so the last stage of a
    # rollout (100 %) needs 100.
    percent = models.DecimalField(
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="0 to 100: a unit is in when its bucket (1..100) is at most this, so 100 is everyone and "
        "raising it keeps everyone who was in.",
        verbose_name="Percent",
    )
    rollout_group = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="The bucket group (empty: the flag's name). Flags that share a group share their cohorts.",
    )
    safe_value = models.BooleanField(
        null=True,
        blank=True,
        default=None,
        help_text="What this flag reads while safe mode is on (empty: safe mode leaves it alone).",
    )

    # Every change is a history row (who, when, every field as it became, the reason given),
    # the users and groups it names included; the admin shows it and reverts to any of them.
    history = HistoricalRecords(m2m_fields=["users", "groups"])

    class Meta(AbstractUserFlag.Meta):
        pass

    @property
    def group(self) -> str:
        return self.rollout_group or self.name

    def is_active(self, request: HttpRequest, read_only: bool = False) -> bool | None:
        """Waffle's rules, after safe mode (a declared safe value wins while it is on)."""
        from flags.services import safe_value_now

        safe = safe_value_now(self)
        if safe is not None:
            return safe
        return super().is_active(request, read_only=read_only)

    def _is_active_for_percent(self, request: HttpRequest, read_only: bool) -> bool | None:
        """The sticky bucket instead of waffle's coin: the request's unit (the member, else
        the anonymous unit cookie) is in when its bucket is at most the percentage."""
        if not self.percent or self.percent <= 0:
            return None
        from flags.services import request_unit, unit_in_rollout

        return unit_in_rollout(self, unit=request_unit(request)) or None


class Stamp(models.Model):
    """One row: the version of everything a process snapshots (flags, switches, samples,
    config, rollouts). Every write bumps it in its own transaction; each process reads it at
    most once a second and reloads its snapshot only when it changed (flags.snapshot)."""

    version = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "snapshot stamp"

    def __str__(self) -> str:
        return f"stamp {self.version}"


# Waffle's own switches and samples keep their history here too (the global.safe_mode switch
# above all: who turned it on, when, and why).
register(Switch, app="flags", table_name="flags_historicalswitch")
register(Sample, app="flags", table_name="flags_historicalsample")

# The models of flags' sub-domains live beside their code; importing them here registers them.
from flags.config import models as _config_models  # noqa: E402, F401
from flags.rollouts import models as _rollout_models  # noqa: E402, F401
