"""Two-connection tests: a thread with its own database connection, started on a signal,
and a wait until a backend is blocked on a lock (PostgreSQL's pg_stat_activity)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connection, connections


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def wait_until_blocked(pid: int, *, timeout: float = 20.0) -> None:
    """Until the backend ``pid`` waits for a lock (seen from this connection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


class Worker(threading.Thread):
    """Runs ``call`` on its own connection once ``go`` is set; keeps its error."""

    def __init__(self, call: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.go = threading.Event()
        self.ready = threading.Event()
        self.pid = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.pid = backend_pid()
            self.ready.set()
            self.go.wait(timeout=30)
            self.call()
        except BaseException as exc:  # kept for the test to look at
            self.error = exc
        finally:
            self.ready.set()
            connections.close_all()
