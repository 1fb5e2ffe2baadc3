"""The service level objectives, declared in code.

An SLO is one route's share of good requests over time: *latency* (answered within
``latency_ms``, a histogram bound so the count is exact) or *availability* (not a 5xx).
Its error budget is ``1 - target``; the burn rate of a window is the bad share in it over
the budget (1: the budget lasts exactly the SLO's period; 14.4 over both 5 min and 1 h
spends 2 % of a 30-day budget in an hour, the Google SRE workbook's page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ops.slo.histogram import bound_index

# Multiwindow burn-rate alerting: both windows must burn above the threshold.
BURN_WINDOWS: dict[str, timedelta] = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}
BURN_PAGE = 14.4
BURN_WARN = 6.0


@dataclass(frozen=True)
class Slo:
    name: str
    route: str  # the URL name the middleware records
    description: str
    target: float  # share of good requests, e.g. 0.995
    latency_ms: int | None = None  # None: availability (good = not a 5xx)

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise ValueError(f"SLO {self.name}: target must be between 0 and 1")
        if self.latency_ms is not None:
            bound_index(self.latency_ms)

    @property
    def budget(self) -> float:
        return 1.0 - self.target

    @property
    def kind(self) -> str:
        return "latency" if self.latency_ms is not None else "availability"

    @property
    def objective(self) -> str:
        percent = f"{100 * self.target:g} %"
        if self.latency_ms is not None:
            return f"{percent} within {self.latency_ms} ms"
        return f"{percent} without a 5xx"


_REGISTRY: dict[str, Slo] = {}


def slo_register(slo: Slo) -> Slo:
    _REGISTRY[slo.name] = slo
    return slo


def slos_all() -> list[Slo]:
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


def slo_get(name: str) -> Slo:
    return _REGISTRY[name]


# Sign-in hashes a password (PBKDF2, a few hundred ms by design): its latency bound is 1 s.
slo_register(Slo("login.latency", "auth-login", "Password sign-in answers within 1 s", 0.995, 1000))
slo_register(Slo("login.availability", "auth-login", "Password sign-in answers without a server error", 0.99))
slo_register(Slo("run_submit.latency", "match-run-submit", "Submitting a match run answers within 500 ms", 0.99, 500))
slo_register(Slo("run_submit.availability", "match-run-submit", "Submitting a match run never errors", 0.995))
slo_register(Slo("matches.latency", "matches", "The matches feed answers within 500 ms", 0.99, 500))
slo_register(Slo("matches.availability", "matches", "The matches feed answers without a server error", 0.995))
