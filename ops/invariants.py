"""Invariants: the runbook's "this query must return no rows" checks, as code.

Each app registers named checks in its ``AppConfig.ready``. A check is either a *rows*
check (a callable returning offending rows; any row is a failure at its level) or a
*figure* check (a callable returning a number that must stay within warn / critical
bounds). ``invariants_run`` evaluates them all; ``doctor``, beat and ``/api/health`` use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ops.models import InvariantState

State = str
_ORDER = {InvariantState.OK: 0, InvariantState.WARN: 1, InvariantState.ERROR: 2, InvariantState.CRITICAL: 3}


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


@dataclass(frozen=True)
class InvariantOutcome:
    name: str
    app: str
    description: str
    state: State
    value: float | None
    detail: str
    seconds: float


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
):
    def decorator(func: Callable[[], float | None]) -> Callable[[], float | None]:
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


def invariant_evaluate(invariant: Invariant) -> InvariantOutcome:
    started = time.perf_counter()
    value: float | None
    try:
        result = invariant.check()
        if invariant.kind == "rows":
            rows = list(result)
            value = float(len(rows))
            state = invariant.level if rows else InvariantState.OK
            detail = "; ".join(str(row) for row in rows[:5]) + (f" (+{len(rows) - 5} more)" if len(rows) > 5 else "")
        else:
            if result is None:
                value, state, detail = None, InvariantState.OK, "no data"
            else:
                value = float(result)
                state = _figure_state(invariant, value)
                detail = ""
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
    )


def invariants_run() -> list[InvariantOutcome]:
    return [invariant_evaluate(invariant) for invariant in invariants_all()]


def state_worst(states: Iterable[State]) -> State:
    return max(states, key=lambda s: _ORDER.get(InvariantState(s), 0), default=InvariantState.OK)
