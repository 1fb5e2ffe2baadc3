"""The HTTP load of the discovery bench: N client processes (``bench.common.load``), each with
one keep-alive connection to 127.0.0.1, each signed in as its own members with
``Authorization: Token <key>``.

Per measured request it records, besides what every cell records (latency, status, the
``X-Bench-Timing`` header), whether the body has the suggestions' shape (``decision_id``,
``personal``, a non-empty ``items`` list) and is personal. Every request sent is counted (each
logs a decision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench.common.load import LoadResult, cell_run


@dataclass(frozen=True)
class Req:
    path: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


@dataclass
class CellResult(LoadResult):
    bad_bodies: int = 0
    personal: int = 0

    def merged(self, other: CellResult) -> CellResult:
        return CellResult(
            **self.merged_fields(other),
            bad_bodies=self.bad_bodies + other.bad_bodies,
            personal=self.personal + other.personal,
        )


empty_result = CellResult.empty


def body_ok(body: bytes) -> tuple[bool, bool]:
    """(the suggestions' shape, personal)."""
    try:
        data = json.loads(body)
    except ValueError:
        return False, False
    ok = (
        isinstance(data, dict)
        and isinstance(data.get("decision_id"), str)
        and isinstance(data.get("personal"), bool)
        and isinstance(data.get("items"), list)
        and 0 < len(data["items"]) <= 12
    )
    return ok, bool(ok and data["personal"])


def _record(result: dict[str, Any], timing: list[str], body: bytes) -> None:
    ok, personal = body_ok(body)
    result["bad"] += not ok
    result["personal"] += personal


def run_cell(
    *, port: int, plans: list[list[Req]], warmup: int, quota: int, timeout: float, rate: float = 0.0
) -> CellResult:
    """One cell: ``len(plans)`` concurrent clients, ``quota`` measured requests each; closed
    loop, or with ``rate`` > 0 open loop at ``rate`` requests/s in all."""
    results, fields = cell_run(
        port=port,
        plans=plans,
        warmup=warmup,
        quota=quota,
        timeout=timeout,
        rate=rate,
        record=_record,
        start=lambda idx: {"bad": 0, "personal": 0},
    )
    return CellResult(
        **fields,
        bad_bodies=sum(r["bad"] for r in results),
        personal=sum(r["personal"] for r in results),
    )
