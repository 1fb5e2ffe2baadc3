"""Invariants: the runbook's "this query must return no rows" checks, as code.

Each app registers named checks in its ``AppConfig.ready``. A check is either a *rows*
check (a callable returning offending rows; any row is a failure at its level) or a
*figure* check (a callable returning a number that must stay within warn / critical
bounds). ``invariants_run`` evaluates them all; ``doctor``, beat and ``/api/health`` use it.

A figure that is a rate, an average or a percentile declares ``min_sample`` and returns a
``Reading`` with the size of the sample it was computed from: below the minimum it reads
"not enough data" (``insufficient_data``, which counts as ok), never warn or critical, and
every outcome names its sample ("n=4 < 20").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from ops.models import InvariantState

State = str
_ORDER = {
    InvariantState.OK: 0,
    InvariantState.INSUFFICIENT_DATA: 0,
    InvariantState.WARN: 1,
    InvariantState.ERROR: 2,
    InvariantState.CRITICAL: 3,
}


@dataclass(frozen=True)
class Reading:
    """What a figure check may return instead of a bare number: the value, the size of the
    sample it was computed from (required when the invariant has a ``min_sample``), and words
    for the detail column ("not applicable on SQLite", "57 of 100 connections")."""

    value: float | None
    sample: int | None = None
    detail: str = ""


def min_sample_default() -> int:
    """The minimum sample of the rate, average and percentile invariants (read at each
    evaluation, so a test or an operator can change it)."""
    return int(settings.OPS_INVARIANT_MIN_SAMPLE)


@dataclass(frozen=True)
class Invariant:
    name: str
    app: str
    description: str
    kind: str  # "rows" | "figure"
    check: Callable[[], Any]
    level: State = InvariantState.CRITICAL  # rows checks: the state when any row comes back
    warn_above: float | None = None
    critical_above: float | None = None
    warn_below: float | None = None
    critical_below: float | None = None
    unit: str = ""
    # Figures only: below this many items the figure is "not enough data", not a state.
    min_sample: int | Callable[[], int] | None = None

    def min_sample_value(self) -> int | None:
        return self.min_sample() if callable(self.min_sample) else self.min_sample


@dataclass(frozen=True)
class InvariantOutcome:
    name: str
    app: str
    description: str
    state: State
    value: float | None
    detail: str
    seconds: float
    sample: int | None = None


_REGISTRY: dict[str, Invariant] = {}


def invariant_register(invariant: Invariant) -> Invariant:
    _REGISTRY[invariant.name] = invariant
    return invariant


def rows_invariant(*, name: str, app: str, description: str, level: State = InvariantState.CRITICAL):
    def decorator(func: Callable[[], Iterable[Any]]) -> Callable[[], Iterable[Any]]:
        invariant_register(Invariant(name=name, app=app, description=description, kind="rows", check=func, level=level))
        return func

    return decorator


def figure_invariant(
    *,
    name: str,
    app: str,
    description: str,
    warn_above: float | None = None,
    critical_above: float | None = None,
    warn_below: float | None = None,
    critical_below: float | None = None,
    unit: str = "",
    min_sample: int | Callable[[], int] | None = None,
):
    def decorator(func: Callable[[], float | Reading | None]) -> Callable[[], float | Reading | None]:
        invariant_register(
            Invariant(
                name=name,
                app=app,
                description=description,
                kind="figure",
                check=func,
                warn_above=warn_above,
                critical_above=critical_above,
                warn_below=warn_below,
                critical_below=critical_below,
                unit=unit,
                min_sample=min_sample,
            )
        )
        return func

    return decorator


def invariants_all() -> list[Invariant]:
    return sorted(_REGISTRY.values(), key=lambda inv: (inv.app, inv.name))


def _figure_state(invariant: Invariant, value: float) -> State:
    if (invariant.critical_above is not None and value > invariant.critical_above) or (
        invariant.critical_below is not None and value < invariant.critical_below
    ):
        return InvariantState.CRITICAL
    if (invariant.warn_above is not None and value > invariant.warn_above) or (
        invariant.warn_below is not None and value < invariant.warn_below
    ):
        return InvariantState.WARN
    return InvariantState.OK


def _figure_judge(invariant: Invariant, result: Any) -> tuple[float | None, State, str, int | None]:
    """(value, state, detail, sample) of a figure check's result."""
    minimum = invariant.min_sample_value()
    reading = result if isinstance(result, Reading) else Reading(value=None if result is None else float(result))
    if minimum is not None and reading.sample is None:
        raise TypeError(f"{invariant.name} has a minimum sample, so its check must return a Reading with its sample")
    value = None if reading.value is None else float(reading.value)
    sample = reading.sample
    notes = [reading.detail] if reading.detail else []
    if minimum is not None and sample is not None:
        if sample < minimum:
            detail = "; ".join([f"n={sample} < {minimum}: not enough data", *notes])
            return value, InvariantState.INSUFFICIENT_DATA, detail, sample
        notes.insert(0, f"n={sample}")
    if value is None:
        return None, InvariantState.OK, "; ".join(notes) or "no data", sample
    return value, _figure_state(invariant, value), "; ".join(notes), sample


def invariant_evaluate(invariant: Invariant) -> InvariantOutcome:
    started = time.perf_counter()
    value: float | None
    sample: int | None = None
    try:
        result = invariant.check()
        if invariant.kind == "rows":
            rows = list(result)
            value = float(len(rows))
            state = invariant.level if rows else InvariantState.OK
            detail = "; ".join(str(row) for row in rows[:5]) + (f" (+{len(rows) - 5} more)" if len(rows) > 5 else "")
        else:
            value, state, detail, sample = _figure_judge(invariant, result)
    except Exception as exc:  # a broken check must show up, not take the others down
        value, state, detail = None, InvariantState.ERROR, f"{type(exc).__name__}: {exc}"[:1000]
    return InvariantOutcome(
        name=invariant.name,
        app=invariant.app,
        description=invariant.description,
        state=str(state),
        value=value,
        detail=detail,
        seconds=time.perf_counter() - started,
        sample=sample,
    )


def invariants_run() -> list[InvariantOutcome]:
    return [invariant_evaluate(invariant) for invariant in invariants_all()]


def state_worst(states: Iterable[State]) -> State:
    return max(states, key=lambda s: _ORDER.get(InvariantState(s), 0), default=InvariantState.OK)
