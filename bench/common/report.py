"""Output helpers: progress lines, percentiles, number formats and verdict lines."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence

import numpy as np

_T0 = time.monotonic()


def log(message: str) -> None:
    """A progress line: seconds since the bench started and the 1-minute load average."""
    load = os.getloadavg()[0]
    print(f"[{time.monotonic() - _T0:7.1f}s load {load:4.1f}] {message}", flush=True)


def checks_log(checks: Iterable[tuple[str, bool, str]]) -> None:
    """One line per correctness check: ``check ok|FAIL: label: detail``."""
    for label, ok, detail in checks:
        log(f"check {'ok' if ok else 'FAIL'}: {label}: {detail}")


def pct(values: np.ndarray | Sequence[float], q: float) -> float:
    array = np.asarray(values, dtype=float)
    return float(np.percentile(array, q)) if array.size else math.nan


def fmt_ms(value: float) -> str:
    """Milliseconds: one decimal below 100, whole numbers from 100."""
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_x(value: float, *, digits: int = 1) -> str:
    """A ratio, as ``3.5x``."""
    return "-" if math.isnan(value) or math.isinf(value) else f"{value:,.{digits}f}x"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def verdict(ok: bool, text: str, *, quick: bool = False) -> bool:
    """Print a target's PASS / FAIL line and return whether it gates. In quick mode the sizes
    are tiny, so a performance target is printed as ``n/a`` and does not gate."""
    if quick:
        print(f"n/a   {text}  (quick mode: not a target at these sizes)")
        return True
    print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return ok
