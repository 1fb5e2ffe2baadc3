"""The HTTP load: N client processes, each with one keep-alive ``http.client`` connection to
127.0.0.1, each signed in as its own members with ``Authorization: Token <key>``.

A *cell* (one system, one round) runs like this: every client connects, sends its warm-up
requests, waits at a barrier for the others, then sends requests back to back (closed loop, no
think time) and records each of its ``quota`` measured ones: latency (request written to body
read, ``time.perf_counter``), status, the server's ``X-Bench-Timing`` header, and whether the
body has the suggestions' shape (``decision_id``, ``personal``, a non-empty ``items`` list). A
client that has its quota keeps sending (unrecorded) until every client has its own, so all
measured requests ran at full concurrency; every request sent is counted (each logs a decision).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import queue as queue_module
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Req:
    path: str
    token: str


@dataclass
class CellResult:
    latency_ms: np.ndarray
    app_ms: np.ndarray
    db_ms: np.ndarray
    queries: np.ndarray
    statuses: Counter[int] = field(default_factory=Counter)
    bad_bodies: int = 0
    personal: int = 0
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    sent: int = 0  # every request sent (warm-up and tail included): each one logs a decision
    client_cpu_s: float = 0.0  # CPU seconds of the client processes

    @property
    def n(self) -> int:
        return int(self.latency_ms.size)

    @property
    def rps(self) -> float:
        return self.n / self.wall_s if self.wall_s > 0 else float("nan")

    def merged(self, other: CellResult) -> CellResult:
        return CellResult(
            latency_ms=np.concatenate([self.latency_ms, other.latency_ms]),
            app_ms=np.concatenate([self.app_ms, other.app_ms]),
            db_ms=np.concatenate([self.db_ms, other.db_ms]),
            queries=np.concatenate([self.queries, other.queries]),
            statuses=self.statuses + other.statuses,
            bad_bodies=self.bad_bodies + other.bad_bodies,
            personal=self.personal + other.personal,
            errors=self.errors + other.errors,
            wall_s=self.wall_s + other.wall_s,
            sent=self.sent + other.sent,
            client_cpu_s=self.client_cpu_s + other.client_cpu_s,
        )


def empty_result() -> CellResult:
    return CellResult(np.array([]), np.array([]), np.array([]), np.array([]))


class _Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, req: Req) -> tuple[float, int, str, bytes]:
        for attempt in (1, 2):
            started = time.perf_counter()
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("GET", req.path, headers={"Authorization": f"Token {req.token}"})
                response = self.conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            elapsed = (time.perf_counter() - started) * 1000
            return elapsed, response.status, response.getheader("X-Bench-Timing") or "", body
        raise AssertionError("unreachable")


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
    interval: float,
) -> None:
    result: dict[str, Any] = {"lat": [], "app": [], "db": [], "nq": [], "status": [], "bad": 0, "personal": 0}
    pos = 0
    try:
        conn = _Conn(port)
        for _ in range(warmup):
            conn.get(plan[pos % len(plan)])
            pos += 1
        barrier.wait(timeout=120)
        result["t0"] = time.perf_counter()
        # Open loop: this client's k-th request is due at t0 + offset + k x interval, and its
        # latency runs from then (a late start, behind a slow previous answer, counts).
        first_due = result["t0"] + interval * idx / total
        k = 0
        while len(result["lat"]) < quota and time.monotonic() < deadline:
            due = first_due + k * interval
            k += 1
            if interval > 0:
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            latency, status, timing, body = conn.get(plan[pos % len(plan)])
            if interval > 0:
                latency = (time.perf_counter() - due) * 1000
            pos += 1
            result["lat"].append(latency)
            result["status"].append(status)
            ok, personal = body_ok(body)
            result["bad"] += not ok
            result["personal"] += personal
            parts = timing.split(";")
            if len(parts) == 4:
                result["app"].append(float(parts[0]))
                result["db"].append(float(parts[1]))
                result["nq"].append(int(parts[2]))
        result["t1"] = time.perf_counter()
        with done.get_lock():
            done.value += 1
        while done.value < total and time.monotonic() < deadline:
            if interval > 0:
                time.sleep(interval)
            conn.get(plan[pos % len(plan)])
            pos += 1
    except Exception as exc:
        result["error"] = f"client {idx}: {exc!r}"
    result["sent"] = pos
    times = os.times()
    result["cpu"] = times.user + times.system
    out.put(result)


def run_cell(
    *, port: int, plans: list[list[Req]], warmup: int, quota: int, timeout: float, rate: float = 0.0
) -> CellResult:
    """One cell: ``len(plans)`` concurrent clients, ``quota`` measured requests each; closed
    loop, or with ``rate`` > 0 open loop at ``rate`` requests/s in all (each client sends every
    ``len(plans) / rate`` seconds, the clients staggered)."""
    ctx = mp.get_context("fork")
    total = len(plans)
    barrier = ctx.Barrier(total)
    done = ctx.Value("i", 0)
    out = ctx.Queue()
    deadline = time.monotonic() + timeout
    interval = total / rate if rate > 0 else 0.0
    procs = [
        ctx.Process(
            target=_client,
            args=(i, port, plan, warmup, quota, total, barrier, done, out, deadline, interval),
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
    errors += [r["error"] for r in results if "error" in r]
    t0 = [r["t0"] for r in results if "t0" in r]
    t1 = [r["t1"] for r in results if "t1" in r]
    return CellResult(
        latency_ms=np.array([x for r in results for x in r["lat"]], dtype=float),
        app_ms=np.array([x for r in results for x in r["app"]], dtype=float),
        db_ms=np.array([x for r in results for x in r["db"]], dtype=float),
        queries=np.array([x for r in results for x in r["nq"]], dtype=float),
        statuses=Counter(s for r in results for s in r["status"]),
        bad_bodies=sum(r["bad"] for r in results),
        personal=sum(r["personal"] for r in results),
        errors=errors,
        wall_s=(max(t1) - min(t0)) if t0 and t1 else 0.0,
        sent=sum(r.get("sent", 0) for r in results),
        client_cpu_s=sum(r.get("cpu", 0.0) for r in results),
    )
