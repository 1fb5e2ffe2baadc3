"""Child processes (each in its own process group, output in a log file), signals that bound
a bench's run, and waiting for a server to answer; everything on loopback only."""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.common.env import BenchError


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals(max_seconds: float) -> None:
    """SIGTERM, and SIGALRM after ``max_seconds``, raise KeyboardInterrupt in the bench's main
    process, so its ``finally`` stops the children and drops what it made. ``signal.alarm(0)``
    cancels the deadline."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGALRM, _interrupt)
    signal.alarm(int(max_seconds))


def default_signals() -> None:
    """For a forked worker (a pool's initializer): SIGTERM and SIGALRM back to their defaults,
    so stopping the pool does not print a traceback from every child."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)


@dataclass
class Child:
    """A child process in its own process group, with its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, *, env: dict[str, str], cwd: Path, stdout_pipe: bool = False) -> Child:
        self.log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(self.argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self.log,
            stderr=self.log,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_line(self, expected: str, *, timeout: float) -> None:
        """Wait for a line on the child's stdout (started with ``stdout_pipe``)."""
        assert self.popen is not None and self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.popen.stdout.fileno()
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"{self.name} exited with {self.popen.returncode}; see {self.log_path}")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                buffer += chunk
                if expected.encode() in buffer:
                    return
        raise BenchError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)
        # The group may still hold grandchildren (none expected); make sure they are gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        if popen.stdout is not None:
            popen.stdout.close()
        if self.log is not None:
            self.log.close()
            self.log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_start(
    *, workers: int, worker_args: Sequence[str], env: dict[str, str], cwd: Path, logdir: Path, ready_path: str
) -> tuple[Child, int]:
    """The project's WSGI app under gunicorn on a free loopback port (``worker_args``: the worker
    class and its options), started and answering ``ready_path``; the child and its port."""
    import sys

    port = free_port()
    server = Child(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "matchplatform.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            *worker_args,
            "--timeout=120",
            "--graceful-timeout=5",
            "--log-level=warning",
        ],
        logdir / "gunicorn.log",
    )
    server.start(env=env, cwd=cwd)
    http_wait(port=port, path=ready_path, timeout=60, child=server)
    return server, port


def http_wait(*, port: int, path: str, timeout: float, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise BenchError(f"{child.name} exited; see {child.log_path}:\n{child.log_tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"nothing answered on 127.0.0.1:{port} after {timeout:.0f}s")
