"""A per-process background flusher: a daemon thread that calls a flush function every few
seconds, for the in-memory buffers the request path fills (request metrics, rollout
exposures) and writes in batches.

    _flusher = Flusher(
        name="request-metrics-flush",
        flush=request_metrics_flush,
        seconds=lambda: float(settings.REQUEST_METRICS_FLUSH_SECONDS),
        enabled=lambda: bool(settings.REQUEST_METRICS_FLUSH_THREAD),
    )
    _flusher.ensure()  # from the request path: cheap once started (a pid comparison)

- ``ensure()`` starts the thread once per process: the pid is checked, so a child forked
  after the thread started (a pre-forking web server's worker) starts its own, as threads do
  not follow a fork. It starts nothing while ``enabled()`` is false or ``seconds()`` is 0 or
  less (tests and commands flush by hand);
- the period is read again before each wait (at least ``MIN_SECONDS``);
- after each flush the thread closes its database connections (back to the web process's
  pool, if it has one): the next flush is seconds away;
- a flush that raises is logged and the thread goes on (the flush functions are written
  never to raise);
- the flush function runs once more when the process exits (``atexit``, registered once:
  a forked child inherits it).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)

MIN_SECONDS = 0.5


class Flusher:
    def __init__(
        self,
        *,
        name: str,
        flush: Callable[[], object],
        seconds: Callable[[], float],
        enabled: Callable[[], bool],
    ) -> None:
        self.name = name
        self._flush = flush
        self._seconds = seconds
        self._enabled = enabled
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._at_exit = False

    def ensure(self) -> bool:
        """Start this process's thread unless it runs already (after a fork, the child's own);
        True when one runs, False when the settings say not to."""
        if self._pid == os.getpid():
            return True
        if not self._enabled() or self._seconds() <= 0:
            return False
        with self._lock:
            if self._pid == os.getpid():
                return True
            stop = threading.Event()
            thread = threading.Thread(target=self._loop, args=(stop,), name=self.name, daemon=True)
            thread.start()
            if not self._at_exit:
                atexit.register(self._flush)
                self._at_exit = True
            self._pid, self._stop, self._thread = os.getpid(), stop, thread
        return True

    def running(self) -> bool:
        """Whether this process's thread runs."""
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop this process's thread and forget the flush at exit (tests)."""
        with self._lock:
            stop, thread = self._stop, self._thread
            self._pid = self._stop = self._thread = None
            if self._at_exit:
                atexit.unregister(self._flush)
                self._at_exit = False
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(max(float(self._seconds()), MIN_SECONDS)):
            try:
                self._flush()
            except Exception:
                logger.exception("%s: the flush failed", self.name)
            finally:
                connections.close_all()  # this thread's connections, back to the pool
