"""The HTTP load of the feed bench: N client processes (``bench.common.load``), each with one
``http.client`` connection to 127.0.0.1 (kept alive, or a new one per request), each signed in
with its member's session cookie.

A *cell* is one mode, sort and depth, closed loop. Per measured request it records, besides
what every cell records (latency, status, the ``X-Bench-Timing`` header), the body's size and
the gunicorn worker that answered (the timing header's pid).
"""

from __future__ import annotations

import http.client
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.common.cpu import CpuUse
from bench.common.load import LoadResult, cell_run


@dataclass(frozen=True)
class Req:
    path: str
    cookie: str  # "sessionid=..."

    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie}


@dataclass
class CellResult(LoadResult):
    workers: Counter[int] = field(default_factory=Counter)  # measured requests per gunicorn worker pid
    body_bytes: float = 0.0
    cpu: CpuUse = field(default_factory=CpuUse)

    def merged(self, other: CellResult) -> CellResult:
        n1, n2 = self.n, other.n
        return CellResult(
            **self.merged_fields(other),
            workers=self.workers + other.workers,
            body_bytes=(self.body_bytes * n1 + other.body_bytes * n2) / max(n1 + n2, 1),
            cpu=self.cpu + other.cpu,
        )

    def cpu_ms(self, part: str) -> float:
        """CPU milliseconds per request sent: web, db, clients or others."""
        return getattr(self.cpu, part) * 1000 / self.sent if self.sent else math.nan

    @property
    def busy_share(self) -> float:
        return self.cpu.busy / self.cpu.total if self.cpu.total else math.nan


empty_result = CellResult.empty


def _record(result: dict[str, Any], timing: list[str], body: bytes) -> None:
    result["bytes"] += len(body)
    if len(timing) == 4:
        result["pid"].append(int(timing[3]))


def run_cell(
    *, port: int, plans: list[list[Req]], warmup: int, quota: int, timeout: float, keepalive: bool = True
) -> CellResult:
    """One cell: ``len(plans)`` concurrent clients, ``quota`` measured requests each."""
    results, fields = cell_run(
        port=port,
        plans=plans,
        warmup=warmup,
        quota=quota,
        timeout=timeout,
        keepalive=keepalive,
        record=_record,
        start=lambda idx: {"idx": idx, "pid": [], "bytes": 0},
    )
    return CellResult(
        **fields,
        workers=Counter(p for r in results for p in r["pid"]),
        body_bytes=sum(r["bytes"] for r in results) / max(fields["latency_ms"].size, 1),
    )


def get_json(*, port: int, req: Req) -> tuple[int, Any]:
    """One request, its status and parsed body (for the HTTP correctness checks)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", req.path, headers=req.headers())
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, None
