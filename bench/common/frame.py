"""The frame every bench's run sits in: a hard deadline, errors reported as one line, and
cleanup (children, connections, the bench database) whatever happens."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.common.db import BenchDatabase, database_drop
from bench.common.env import BenchError
from bench.common.procs import stop_on_signals
from bench.common.report import log


@dataclass
class Frame:
    failed: bool = False  # the run ended on an error, a signal or its deadline


@contextmanager
def bench_frame(
    *,
    db: BenchDatabase,
    keep: bool,
    max_seconds: float,
    cleanup: Callable[[], None] | None = None,
    stop_errors: tuple[type[Exception], ...] = (),
) -> Iterator[Frame]:
    """SIGTERM, and SIGALRM after ``max_seconds``, unwind the run (``stop_on_signals``). A
    ``BenchError`` (or one of ``stop_errors``, e.g. a stalled pipeline) or an interruption is
    logged as one line and marks the frame failed; any other exception propagates with its
    traceback. Then ``cleanup`` (stop the children, ...), Django's connections closed, and the
    bench database dropped unless ``keep``."""
    frame = Frame()
    reported: tuple[type[Exception], ...] = (BenchError, *stop_errors)
    stop_on_signals(max_seconds)
    try:
        yield frame
    except KeyboardInterrupt as exc:
        frame.failed = True
        log(f"interrupted or out of time ({exc}); cleaning up")
    except reported as exc:
        frame.failed = True
        log(f"bench error: {exc}")
    finally:
        signal.alarm(0)
        if cleanup is not None:
            cleanup()
        from django.apps import apps

        if apps.ready:
            from django.db import connections

            connections.close_all()
        if not keep:
            with contextlib.suppress(Exception):
                database_drop(db)
        log(f"done; bench database {db.name} {'kept' if keep else 'dropped'}")
