"""The HTTP load: N client processes, each with one keep-alive ``http.client`` connection.

A *cell* (one mode, sort and depth) runs like this: every client process connects, sends its
warm-up requests, waits at a barrier for the others, then sends requests back to back (closed
loop, no think time) and records the latency of each of its ``quota`` measured ones (request
written to body read, ``time.perf_counter``) and the server's ``X-Bench-Timing`` header. A
client that has its quota keeps sending (unrecorded) until every client has its own, so all
measured requests ran at full concurrency. Requests go to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import math
import multiprocessing as mp
import os
import queue as queue_module
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.feed_support.cpu import CpuUse


@dataclass(frozen=True)
class Req:
    path: str
    cookie: str  # "sessionid=..."


@dataclass
class CellResult:
    latency_ms: np.ndarray
    app_ms: np.ndarray
    db_ms: np.ndarray
    queries: np.ndarray
    statuses: Counter[int] = field(default_factory=Counter)
    workers: Counter[int] = field(default_factory=Counter)  # measured requests per gunicorn worker pid
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    body_bytes: float = 0.0
    sent: int = 0  # every request sent, warm-up and tail included (the CPU is spent on all of them)
    client_cpu_s: float = 0.0
    cpu: CpuUse = field(default_factory=CpuUse)

    @property
    def n(self) -> int:
        return int(self.latency_ms.size)

    @property
    def rps(self) -> float:
        return self.n / self.wall_s if self.wall_s > 0 else math.nan

    def merged(self, other: CellResult) -> CellResult:
        n1, n2 = self.n, other.n
        return CellResult(
            latency_ms=np.concatenate([self.latency_ms, other.latency_ms]),
            app_ms=np.concatenate([self.app_ms, other.app_ms]),
            db_ms=np.concatenate([self.db_ms, other.db_ms]),
            queries=np.concatenate([self.queries, other.queries]),
            statuses=self.statuses + other.statuses,
            workers=self.workers + other.workers,
            errors=self.errors + other.errors,
            wall_s=self.wall_s + other.wall_s,
            body_bytes=(self.body_bytes * n1 + other.body_bytes * n2) / max(n1 + n2, 1),
            sent=self.sent + other.sent,
            client_cpu_s=self.client_cpu_s + other.client_cpu_s,
            cpu=self.cpu + other.cpu,
        )

    def cpu_ms(self, part: str) -> float:
        """CPU milliseconds per request sent: web, db, clients or others."""
        return getattr(self.cpu, part) * 1000 / self.sent if self.sent else math.nan

    @property
    def busy_share(self) -> float:
        return self.cpu.busy / self.cpu.total if self.cpu.total else math.nan


def empty_result() -> CellResult:
    return CellResult(np.array([]), np.array([]), np.array([]), np.array([]))


class _Conn:
    """One client's connection. With ``keepalive`` it is reused for every request; without, each
    request opens its own (``Connection: close``), timed from the connect on."""

    def __init__(self, port: int, *, keepalive: bool) -> None:
        self.port = port
        self.keepalive = keepalive
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {} if keepalive else {"Connection": "close"}

    def get(self, req: Req) -> tuple[float, int, str, int]:
        for attempt in (1, 2):
            started = time.perf_counter()
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("GET", req.path, headers={"Cookie": req.cookie, **self.headers})
                response = self.conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if not self.keepalive:
                self.conn.close()
                self.conn = None
            return elapsed, response.status, response.getheader("X-Bench-Timing") or "", len(body)
        raise AssertionError("unreachable")


def _client(
    idx: int,
    port: int,
    plan: list[Req],
    warmup: int,
    quota: int,
    total: int,
    barrier: Any,
    done: Any,
    out: Any,
    deadline: float,
    keepalive: bool,
) -> None:
    result: dict[str, Any] = {
        "idx": idx,
        "lat": [],
        "app": [],
        "db": [],
        "nq": [],
        "pid": [],
        "status": [],
        "bytes": 0,
    }
    pos = 0
    try:
        conn = _Conn(port, keepalive=keepalive)
        for _ in range(warmup):
            conn.get(plan[pos % len(plan)])
            pos += 1
        barrier.wait(timeout=120)
        result["t0"] = time.perf_counter()
        while len(result["lat"]) < quota and time.monotonic() < deadline:
            latency, status, timing, size = conn.get(plan[pos % len(plan)])
            pos += 1
            result["lat"].append(latency)
            result["status"].append(status)
            result["bytes"] += size
            parts = timing.split(";")
            if len(parts) == 4:
                result["app"].append(float(parts[0]))
                result["db"].append(float(parts[1]))
                result["nq"].append(int(parts[2]))
                result["pid"].append(int(parts[3]))
        result["t1"] = time.perf_counter()
        with done.get_lock():
            done.value += 1
        while done.value < total and time.monotonic() < deadline:
            conn.get(plan[pos % len(plan)])
            pos += 1
    except Exception as exc:
        result["error"] = f"client {idx}: {exc!r}"
    result["sent"] = pos
    times = os.times()
    result["cpu"] = times.user + times.system
    out.put(result)


def run_cell(
    *, port: int, plans: list[list[Req]], warmup: int, quota: int, timeout: float, keepalive: bool = True
) -> CellResult:
    """One cell: ``len(plans)`` concurrent clients, ``quota`` measured requests each."""
    ctx = mp.get_context("fork")
    total = len(plans)
    barrier = ctx.Barrier(total)
    done = ctx.Value("i", 0)
    out = ctx.Queue()
    deadline = time.monotonic() + timeout
    procs = [
        ctx.Process(
            target=_client,
            args=(i, port, plan, warmup, quota, total, barrier, done, out, deadline, keepalive),
            daemon=True,
        )
        for i, plan in enumerate(plans)
    ]
    for proc in procs:
        proc.start()
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        while len(results) < total:
            left = deadline + 30 - time.monotonic()
            if left <= 0:
                errors.append(f"only {len(results)}/{total} clients reported before the deadline")
                break
            try:
                results.append(out.get(timeout=min(left, 5)))
            except queue_module.Empty:
                if not any(p.is_alive() for p in procs) and out.empty():
                    errors.append(f"clients exited; {len(results)}/{total} reported")
                    break
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    lat = [x for r in results for x in r["lat"]]
    statuses = Counter(s for r in results for s in r["status"])
    errors += [r["error"] for r in results if "error" in r]
    t0 = [r["t0"] for r in results if "t0" in r]
    t1 = [r["t1"] for r in results if "t1" in r]
    return CellResult(
        latency_ms=np.array(lat, dtype=float),
        app_ms=np.array([x for r in results for x in r["app"]], dtype=float),
        db_ms=np.array([x for r in results for x in r["db"]], dtype=float),
        queries=np.array([x for r in results for x in r["nq"]], dtype=float),
        statuses=statuses,
        workers=Counter(p for r in results for p in r["pid"]),
        errors=errors,
        wall_s=(max(t1) - min(t0)) if t0 and t1 else 0.0,
        body_bytes=sum(r["bytes"] for r in results) / max(len(lat), 1),
        sent=sum(r.get("sent", 0) for r in results),
        client_cpu_s=sum(r.get("cpu", 0.0) for r in results),
    )


def get_json(*, port: int, req: Req) -> tuple[int, Any]:
    """One request, its status and parsed body (for the HTTP correctness checks)."""
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", req.path, headers={"Cookie": req.cookie})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, None
