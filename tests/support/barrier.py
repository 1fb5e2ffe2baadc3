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


def run_together(
    *, script: str, count: int, env: dict[str, str], folder: Path, cwd: Path, timeout: float = 120
) -> list:
    """Start ``count`` Python children on ``script`` (which calls ``start_line(folder, name)``),
    release them together, and return the JSON each printed last."""
    import json
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE + script, str(folder), f"c{n}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    try:
        release_when_ready(folder=folder, count=count, timeout=timeout)
        outputs = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    failed = [err[-2000:] for proc, (_, err) in zip(procs, outputs, strict=True) if proc.returncode != 0]
    assert not failed, failed
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
