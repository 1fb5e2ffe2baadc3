"""The HTTP load every web bench drives: N forked client processes, each with its own
``http.client`` connection to 127.0.0.1, sending a plan of requests.

A *cell* runs like this: every client connects, sends its warm-up requests, waits at a barrier
for the others, then sends requests and records each of its ``quota`` measured ones: latency
(request written to body read, ``time.perf_counter``), status, and the server's
``X-Bench-Timing`` header (``app_ms;db_ms;queries;pid``). Closed loop (back to back, no think
time), or open loop with an ``interval``: the client's k-th request is due at
``t0 + offset + k x interval`` and its latency runs from then, so a late start behind a slow
answer counts. A client that has its quota keeps sending (unrecorded) until every client has
its own, so all measured requests ran at full concurrency; every request sent is counted.

What a bench adds (its request's headers, what it reads from a body or the timing header, its
own result fields) goes through ``Request.headers``, the ``record`` callback and a subclass of
``LoadResult``.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import queue as queue_module
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np


class Request(Protocol):
    @property
    def path(self) -> str: ...

    def headers(self) -> dict[str, str]: ...


@dataclass
class LoadResult:
    """What every cell measures; a bench's own result subclasses it."""

    latency_ms: np.ndarray
    app_ms: np.ndarray
    db_ms: np.ndarray
    queries: np.ndarray
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    sent: int = 0  # every request sent, warm-up and tail included
    client_cpu_s: float = 0.0  # CPU seconds of the client processes

    @classmethod
    def empty(cls) -> Self:
        return cls(np.array([]), np.array([]), np.array([]), np.array([]))

    @property
    def n(self) -> int:
        return int(self.latency_ms.size)

    @property
    def rps(self) -> float:
        return self.n / self.wall_s if self.wall_s > 0 else float("nan")

    def merged_fields(self, other: LoadResult) -> dict[str, Any]:
        """The shared fields of two cells put together (a subclass's ``merged`` adds its own)."""
        return {
            "latency_ms": np.concatenate([self.latency_ms, other.latency_ms]),
            "app_ms": np.concatenate([self.app_ms, other.app_ms]),
            "db_ms": np.concatenate([self.db_ms, other.db_ms]),
            "queries": np.concatenate([self.queries, other.queries]),
            "statuses": self.statuses + other.statuses,
            "errors": self.errors + other.errors,
            "wall_s": self.wall_s + other.wall_s,
            "sent": self.sent + other.sent,
            "client_cpu_s": self.client_cpu_s + other.client_cpu_s,
        }


class Conn:
    """One client's connection. With ``keepalive`` it is reused for every request; without, each
    request opens its own (``Connection: close``), timed from the connect on. A request that
    fails on a reused connection is sent once more on a new one."""

    def __init__(self, port: int, *, keepalive: bool = True) -> None:
        self.port = port
        self.keepalive = keepalive
        self.conn: http.client.HTTPConnection | None = None
        self.extra = {} if keepalive else {"Connection": "close"}

    def get(self, req: Request) -> tuple[float, int, str, bytes]:
        """(latency ms, status, the ``X-Bench-Timing`` header, body)."""
        for attempt in (1, 2):
            started = time.perf_counter()
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("GET", req.path, headers={**req.headers(), **self.extra})
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
            return elapsed, response.status, response.getheader("X-Bench-Timing") or "", body
        raise AssertionError("unreachable")


# What a bench reads from one measured answer into its client's result dict: (result, the
# timing header split on ";", body).
Record = Callable[[dict[str, Any], list[str], bytes], None]


@dataclass(frozen=True)
class Cell:
    """What the clients of one cell share (made by ``cell_run``, passed to every client)."""

    port: int
    warmup: int
    quota: int
    total: int
    deadline: float
    interval: float  # seconds between one client's requests (open loop); 0: closed loop
    keepalive: bool
    barrier: Any
    done: Any
    out: Any


def _client(idx: int, plan: Sequence[Request], cell: Cell, result: dict[str, Any], record: Record) -> None:
    result.update({"lat": [], "app": [], "db": [], "nq": [], "status": []})
    interval = cell.interval
    pos = 0
    try:
        conn = Conn(cell.port, keepalive=cell.keepalive)
        for _ in range(cell.warmup):
            conn.get(plan[pos % len(plan)])
            pos += 1
        cell.barrier.wait(timeout=120)
        result["t0"] = time.perf_counter()
        first_due = result["t0"] + interval * idx / cell.total
        k = 0
        while len(result["lat"]) < cell.quota and time.monotonic() < cell.deadline:
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
            parts = timing.split(";")
            if len(parts) == 4:
                result["app"].append(float(parts[0]))
                result["db"].append(float(parts[1]))
                result["nq"].append(int(parts[2]))
            record(result, parts, body)
        result["t1"] = time.perf_counter()
        with cell.done.get_lock():
            cell.done.value += 1
        while cell.done.value < cell.total and time.monotonic() < cell.deadline:
            if interval > 0:
                time.sleep(interval)
            conn.get(plan[pos % len(plan)])
            pos += 1
    except Exception as exc:
        result["error"] = f"client {idx}: {exc!r}"
    result["sent"] = pos
    times = os.times()
    result["cpu"] = times.user + times.system
    cell.out.put(result)


def cell_run(
    *,
    port: int,
    plans: Sequence[Sequence[Request]],
    warmup: int,
    quota: int,
    timeout: float,
    record: Record,
    start: Callable[[int], dict[str, Any]] = lambda idx: {},
    rate: float = 0.0,
    keepalive: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One cell: ``len(plans)`` concurrent clients, ``quota`` measured requests each; closed
    loop, or with ``rate`` > 0 open loop at ``rate`` requests/s in all (each client sends every
    ``len(plans) / rate`` seconds, the clients staggered). ``start(idx)`` is a client's result
    dict before it runs (a bench's own counters). Returns the clients' result dicts and the
    ``LoadResult`` fields made from them."""
    ctx = mp.get_context("fork")
    total = len(plans)
    cell = Cell(
        port=port,
        warmup=warmup,
        quota=quota,
        total=total,
        deadline=time.monotonic() + timeout,
        interval=total / rate if rate > 0 else 0.0,
        keepalive=keepalive,
        barrier=ctx.Barrier(total),
        done=ctx.Value("i", 0),
        out=ctx.Queue(),
    )
    procs = [
        ctx.Process(target=_client, args=(i, plan, cell, start(i), record), daemon=True) for i, plan in enumerate(plans)
    ]
    for proc in procs:
        proc.start()
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        while len(results) < total:
            left = cell.deadline + 30 - time.monotonic()
            if left <= 0:
                errors.append(f"only {len(results)}/{total} clients reported before the deadline")
                break
            try:
                results.append(cell.out.get(timeout=min(left, 5)))
            except queue_module.Empty:
                if not any(p.is_alive() for p in procs) and cell.out.empty():
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
    fields = {
        "latency_ms": np.array([x for r in results for x in r["lat"]], dtype=float),
        "app_ms": np.array([x for r in results for x in r["app"]], dtype=float),
        "db_ms": np.array([x for r in results for x in r["db"]], dtype=float),
        "queries": np.array([x for r in results for x in r["nq"]], dtype=float),
        "statuses": Counter(s for r in results for s in r["status"]),
        "errors": errors,
        "wall_s": (max(t1) - min(t0)) if t0 and t1 else 0.0,
        "sent": sum(r.get("sent", 0) for r in results),
        "client_cpu_s": sum(r.get("cpu", 0.0) for r in results),
    }
    return results, fields
