"""The SLO guard: the runbook's "burn rate > 2.0: enable safe mode", done by the platform.

Every minute (beat, ``discovery.slo_guard``) the guard reads every SLO's burn rate over both
5 minutes and an hour (discovery.slos). When one with enough requests burns at or above
``DISCOVERY_SLO_BURN_RATE_LIMIT`` and safe mode is off, it turns the ``global.safe_mode``
switch on (through ``flags.services.switch_set``: the history row's reason starts with
``slo-guard``) and sends one alert. While safe mode stays on it does nothing, so it speaks
once. It never turns safe mode off: an operator does, when they have judged the incident;
for ``DISCOVERY_SLO_GUARD_HOLDOFF_SECONDS`` after that it holds off (the hour's window still
holds the burn they judged), then guards again.

Two guards at once (two beat processes, a manual run) decide once: the decision is made in
one short transaction under a lock that serializes the guards, reading the switch's row,
not a process's snapshot.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from waffle.models import Switch

from discovery.slos import BurnWorst, burn_rate_limit, slo_burn_worst
from flags.names import SAFE_MODE
from flags.services import switch_set
from ops.invariants import min_sample_default
from ops.models import InvariantState
from ops.notify import alert_send

logger = logging.getLogger(__name__)

GUARD_ACTOR = "slo-guard"
GUARD_ALERT_KEY = "slo-guard:safe-mode"
# A fixed key for PostgreSQL's advisory lock that serializes the guards' decisions.
GUARD_LOCK_KEY = zlib.crc32(b"discovery.slo_guard")

# What a run did.
GUARD_QUIET = "quiet"  # no SLO burns at the limit (or none has enough requests)
GUARD_TRIPPED = "tripped"  # safe mode turned on, alert sent
GUARD_ALREADY_ON = "already_on"  # burning, but safe mode is on already: nothing to do
GUARD_HELD = "held"  # burning, but an operator turned safe mode off within the hold-off


@dataclass(frozen=True)
class GuardOutcome:
    action: str
    burn_rate: float | None
    slo: str | None
    sample: int
    detail: str


def _guards_serialize() -> None:
    # On SQLite every write transaction already starts IMMEDIATE (settings): it holds the
    # database's write lock until it commits.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [GUARD_LOCK_KEY])


def _turned_off_recently(*, now: datetime) -> Any | None:
    """The history row of an operator turning safe mode off within the hold-off, if any."""
    holdoff = timedelta(seconds=float(settings.DISCOVERY_SLO_GUARD_HOLDOFF_SECONDS))
    last = Switch.history.filter(name=SAFE_MODE).order_by("-history_date", "-history_id").first()  # type: ignore[attr-defined]
    if last is not None and not last.active and last.history_date > now - holdoff:
        return last
    return None


def _reason(worst: BurnWorst, limit: float) -> str:
    reading = worst.reading
    assert reading is not None
    return f"{GUARD_ACTOR}: {reading.slo} burn rate {reading.burn_rate:.2f}x >= {limit:g}"


def slo_guard_run(*, now: datetime | None = None) -> GuardOutcome:
    """Read the burn rates; turn safe mode on (and alert, once) when one is at the limit."""
    now = now or timezone.now()
    limit = burn_rate_limit()
    worst = slo_burn_worst(until=now, min_sample=min_sample_default())
    reading = worst.reading
    # Rounded: a budget of 1 - 0.995 is not exact in floating point, and 2x must read as 2.
    if reading is None or reading.burn_rate is None or round(reading.burn_rate, 6) < limit:
        detail = (
            f"highest burn rate {reading.burn_rate:.2f}x ({reading.slo}) under {limit:g}"
            if reading is not None and reading.burn_rate is not None
            else f"no SLO has enough requests (largest sample {worst.sample})"
        )
        return GuardOutcome(
            action=GUARD_QUIET,
            burn_rate=worst.burn_rate,
            slo=reading.slo if reading else None,
            sample=worst.sample,
            detail=detail,
        )

    def outcome(action: str, detail: str) -> GuardOutcome:
        return GuardOutcome(
            action=action, burn_rate=reading.burn_rate, slo=reading.slo, sample=reading.sample, detail=detail
        )

    # Reading the figures above took the queries; the decision below is one short transaction.
    with transaction.atomic(durable=True):
        _guards_serialize()
        if Switch.objects.filter(name=SAFE_MODE, active=True).exists():
            return outcome(GUARD_ALREADY_ON, "safe mode is on already")
        off = _turned_off_recently(now=now)
        if off is not None:
            by = off.history_user.get_username() if off.history_user_id else "someone"
            logger.warning(
                "slo guard: %s burns at %.2fx, but %s turned safe mode off at %s: holding off",
                reading.slo,
                reading.burn_rate,
                by,
                off.history_date.isoformat(),
            )
            return outcome(GUARD_HELD, f"{by} turned safe mode off at {off.history_date.isoformat()}")
        reason = _reason(worst, limit)
        switch_set(SAFE_MODE, True, reason=reason[:100])
        logger.warning("slo guard: safe mode on: %s (%s)", reason, reading.detail)
        # Sent once the switch commits (nothing is sent if it rolls back).
        alert_send(
            key=GUARD_ALERT_KEY,
            state=InvariantState.CRITICAL,
            title="Safe mode turned on by the SLO guard",
            text=(
                f"{reading.slo} burns its error budget at {reading.burn_rate:.2f}x (limit {limit:g}) over both "
                f"5 min and 1 h: {reading.detail}. Safe mode stays on until an operator turns it off."
            ),
            fields={
                "slo": reading.slo,
                "burn_rate": round(reading.burn_rate, 3),
                "limit": limit,
                "requests": reading.sample,
                "by": GUARD_ACTOR,
            },
        )
        return outcome(GUARD_TRIPPED, reason)


__all__ = [
    "GUARD_ACTOR",
    "GUARD_ALERT_KEY",
    "GUARD_ALREADY_ON",
    "GUARD_HELD",
    "GUARD_QUIET",
    "GUARD_TRIPPED",
    "GuardOutcome",
    "slo_guard_run",
]
