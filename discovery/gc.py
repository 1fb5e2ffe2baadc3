"""Retention: learning events and intent signals older than their retention (config
``discovery.retention``) are deleted daily, in batches, counted.

Never the rows of an open attribution window: a decision is open while a click or save may
still reward it (``ranker.policy``'s ``attribution_seconds``), and the signals that may join
it are younger still (a signal joins a decision it follows, within the window). So each
table's cutoff is ``now - max(retention, attribution window)``: a retention shorter than the
window keeps the window's rows anyway. The window taken is the longest of the one in force
and the one stored (safe mode answers its own), so a GC run in safe mode keeps what a
normal one would.

Each batch is its own short transaction: the ids of at most ``batch_size`` rows past the
cutoff (oldest ids first, the primary key's index), then one DELETE of those ids. A
decision's late signals (younger than the cutoff, so kept) lose their link to it
(``decision`` is SET_NULL) in the same transaction. No statement holds a lock for longer
than a batch takes, so members' writes go on while the GC runs; a run past its time budget
stops between batches and the next day's goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from pydantic import ValidationError

from discovery.configs import DISCOVERY_RETENTION, RANKER_POLICY, RankerPolicy
from discovery.models import IntentSignal, LearningEvent
from flags.config.selectors import config_current, config_get

logger = logging.getLogger(__name__)

LEARNING_EVENTS = "learning_events"
INTENT_SIGNALS = "intent_signals"

Progress = Callable[[str, int, int], None]  # table, deleted in this batch, deleted so far


@dataclass
class GcResult:
    """What a run deleted (or, dry, would delete), per table; ``complete`` is False when it
    stopped at its time budget with rows left."""

    dry_run: bool
    cutoffs: dict[str, datetime]
    attribution_seconds: int
    deleted: dict[str, int] = field(default_factory=lambda: {LEARNING_EVENTS: 0, INTENT_SIGNALS: 0})
    batches: int = 0
    complete: bool = True
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "deleted": dict(self.deleted),
            "batches": self.batches,
            "complete": self.complete,
            "attribution_seconds": self.attribution_seconds,
            "cutoffs": {name: moment.isoformat() for name, moment in self.cutoffs.items()},
            "seconds": round(self.seconds, 3),
        }


def attribution_window_seconds() -> int:
    """The longest attribution window a decision may be held to now: the one in force (safe
    mode answers the safe policy's) or the one stored."""
    seconds = config_get(RANKER_POLICY).attribution_seconds
    stored = config_current(RANKER_POLICY.name)
    if stored is not None:
        # A stored value that no longer fits the schema: config_get answered the default.
        with contextlib.suppress(ValidationError):
            seconds = max(seconds, RankerPolicy.model_validate(stored.value).attribution_seconds)
    return seconds


def retention_cutoffs(*, now: datetime) -> tuple[dict[str, datetime], int]:
    """Each table's cutoff (rows older than it go) and the attribution window it respects."""
    retention = config_get(DISCOVERY_RETENTION)
    window = timedelta(seconds=attribution_window_seconds())
    cutoffs = {
        LEARNING_EVENTS: now - max(timedelta(days=retention.learning_events_days), window),
        INTENT_SIGNALS: now - max(timedelta(days=retention.intent_signals_days), window),
    }
    return cutoffs, int(window.total_seconds())


def _batch_delete(
    model: type[Model], *, time_field: str, cutoff: datetime, batch_size: int, after: int = 0
) -> tuple[int, int | None]:
    """Delete one batch (at most ``batch_size`` rows older than ``cutoff`` with an id above
    ``after``) in its own transaction; returns how many rows went and the batch's last id
    (None: nothing left). The next batch starts after that id, so no batch walks again past
    the index entries of the rows the earlier ones deleted."""
    with transaction.atomic():
        older = model._default_manager.filter(pk__gt=after, **{f"{time_field}__lt": cutoff})
        ids = list(older.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return 0, None
        if model is LearningEvent:
            # The decision's later signals stay (they are younger); only their link goes.
            IntentSignal.objects.filter(decision_id__in=ids).update(decision=None)
        # One DELETE by ids, without Django's collector (which would load every row of the
        # batch): a signal is referenced by nothing, a decision only by its signals' link,
        # cleared above. A reference added to either later makes the database's foreign key
        # refuse this commit until it is handled here: loudly, never a dangling row.
        older_ids = model._default_manager.filter(pk__in=ids, **{f"{time_field}__lt": cutoff})
        return older_ids._raw_delete(older_ids.db), ids[-1]


def retention_gc_run(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    max_seconds: float | None = None,
    progress: Progress | None = None,
) -> GcResult:
    """Delete the learning events and intent signals past their retention (signals first:
    fewer links to clear), batch by batch; ``dry_run`` only counts. Returns the counts."""
    started = time.monotonic()
    now = now or timezone.now()
    cutoffs, window = retention_cutoffs(now=now)
    batch_size = config_get(DISCOVERY_RETENTION).batch_size
    result = GcResult(dry_run=dry_run, cutoffs=cutoffs, attribution_seconds=window)
    tables: list[tuple[str, type[Model], str]] = [
        (INTENT_SIGNALS, IntentSignal, "created_at"),
        (LEARNING_EVENTS, LearningEvent, "decided_at"),
    ]
    for name, model, time_field in tables:
        if dry_run:
            result.deleted[name] = model._default_manager.filter(**{f"{time_field}__lt": cutoffs[name]}).count()
            continue
        last_id = 0
        while True:
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                result.complete = False
                break
            deleted, batch_last = _batch_delete(
                model, time_field=time_field, cutoff=cutoffs[name], batch_size=batch_size, after=last_id
            )
            if batch_last is None:
                break
            last_id = batch_last
            result.batches += 1
            result.deleted[name] += deleted
            if progress is not None:
                progress(name, deleted, result.deleted[name])
        if not result.complete:
            break
    result.seconds = time.monotonic() - started
    logger.info(
        "discovery gc%s: %d learning events, %d intent signals in %d batches (%.1fs%s; attribution window %ds)",
        " (dry run)" if dry_run else "",
        result.deleted[LEARNING_EVENTS],
        result.deleted[INTENT_SIGNALS],
        result.batches,
        result.seconds,
        "" if result.complete else ", stopped at its time budget",
        window,
    )
    return result


__all__ = [
    "INTENT_SIGNALS",
    "LEARNING_EVENTS",
    "GcResult",
    "attribution_window_seconds",
    "retention_cutoffs",
    "retention_gc_run",
]
