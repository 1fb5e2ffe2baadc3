"""An invariant per SLO: its multiwindow burn rate (5 min and 1 h) stays under the page
threshold. Low traffic reads "not enough data"."""

from __future__ import annotations

from django.utils import timezone

from ops.invariants import Invariant as _Invariant
from ops.invariants import Reading, invariant_register, min_sample_default
from ops.slo.selectors import slo_status
from ops.slo.slos import BURN_PAGE, BURN_WARN, Slo, slos_all


def _fmt(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}x"


def slo_burn_reading(slo: Slo) -> Reading:
    status = slo_status(slo, until=timezone.now())
    windows = ", ".join(f"{name}: {_fmt(w.burn_rate)} ({w.bad}/{w.count})" for name, w in status.windows.items())
    return Reading(value=status.burn_rate, sample=status.sample, detail=f"{slo.objective}; {windows}")


def _invariant(slo: Slo) -> _Invariant:
    return _Invariant(
        name=f"slo.{slo.name}.burn_rate",
        app="ops",
        description=f"{slo.description}: burn rate over both 5 min and 1 h ({slo.route}, {slo.objective})",
        kind="figure",
        check=lambda: slo_burn_reading(slo),
        warn_above=BURN_WARN,
        critical_above=BURN_PAGE,
        unit="x",
        min_sample=min_sample_default,
    )


def slo_invariants_register() -> None:
    for slo in slos_all():
        invariant_register(_invariant(slo))


slo_invariants_register()
