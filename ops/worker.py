"""This process's identity and counters as a queue worker.

The worker id is per process (DESIGN.md: "a per-process worker id, never a host or pod
name"): two processes on one host, or a restarted pod with the same name, must never
be able to ack each other's leases.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field


@dataclass
class WorkerCounters:
    processed: int = 0
    failed: int = 0
    leases_lost: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, processed: int = 0, failed: int = 0, leases_lost: int = 0) -> None:
        with self.lock:
            self.processed += processed
            self.failed += failed
            self.leases_lost += leases_lost

    def snapshot(self) -> tuple[int, int, int]:
        with self.lock:
            return self.processed, self.failed, self.leases_lost


_state: dict[str, object] = {}
# The heartbeat thread and the first task may both ask at once; one id per process.
_lock = threading.Lock()


def _reset() -> None:
    global _lock
    _state.clear()
    _lock = threading.Lock()  # a lock held by another thread at fork time stays held in the child


os.register_at_fork(after_in_child=_reset)


def worker_id() -> str:
    with _lock:
        value = _state.setdefault("id", f"w-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    return str(value)


def worker_counters() -> WorkerCounters:
    with _lock:
        counters = _state.setdefault("counters", WorkerCounters())
    assert isinstance(counters, WorkerCounters)
    return counters
