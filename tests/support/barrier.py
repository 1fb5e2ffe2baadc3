"""A start line for child processes: each says it is ready, then all start together.

Timing the start by the clock is not enough on a loaded machine (a child may still be
importing Django when the others are done), so the parent waits for every child first."""

from __future__ import annotations

import time
from pathlib import Path

CHILD_CODE = """
def start_line(folder, name):
    import os, time
    open(os.path.join(folder, "ready-" + name), "w").close()
    go = os.path.join(folder, "go")
    deadline = time.monotonic() + 120
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.001)
"""


def release_when_ready(*, folder: Path, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("ready-*"))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.glob('ready-*')))} of {count} children got ready")
        time.sleep(0.01)
    (folder / "go").touch()
