"""Fake gate metrics for the rollout tests: registered for one test, gone after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from flags import gates
from flags.gates import Cohort, GateError, GateMetric, GateReading, GateWindow

T0 = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
TICK = timedelta(seconds=30)


def at(tick: int) -> datetime:
    """The time of tick ``tick`` after the rollout started at T0 (a tick slot each)."""
    return T0 + tick * TICK + timedelta(seconds=1)


@dataclass
class FakeComparative:
    """A comparative metric whose cumulative cohorts the test sets; or a failure to raise."""

    treatment: Cohort | None = None
    control: Cohort | None = None
    fail: BaseException | None = None
    windows: list[GateWindow] = field(default_factory=list)

    def __call__(self, window: GateWindow) -> GateReading:
        self.windows.append(window)
        if self.fail is not None:
            raise self.fail
        if self.treatment is None:
            return GateReading(value=None)
        rate = self.treatment.rate
        return GateReading(value=rate, sample=self.treatment.n, treatment=self.treatment, control=self.control)

    def set(self, *, t: tuple[int, int], c: tuple[int, int]) -> None:
        self.treatment, self.control = Cohort(*t), Cohort(*c)


@dataclass
class FakeAbsolute:
    value: float | None = None
    sample: int = 0
    fail: BaseException | None = None

    def __call__(self, window: GateWindow) -> GateReading:
        if self.fail is not None:
            raise self.fail
        return GateReading(value=self.value, sample=self.sample)


@pytest.fixture
def fake_metrics(monkeypatch) -> Iterator[Callable[..., object]]:
    """``register(name, compute, comparative=False)``; unregistered when the test ends."""

    def register(name: str, compute: Callable[[GateWindow], GateReading], *, comparative: bool = False) -> object:
        metric = GateMetric(name=name, app="tests", description="fake", compute=compute, comparative=comparative)
        monkeypatch.setitem(gates._REGISTRY, name, metric)
        return compute

    yield register


__all__ = ["T0", "TICK", "FakeAbsolute", "FakeComparative", "GateError", "at", "fake_metrics"]
