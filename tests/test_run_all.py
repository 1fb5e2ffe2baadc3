"""Stopping ``make run`` (bin/run-all) from a real terminal: Ctrl-C stops web, worker and beat,
whether it comes while they start or once they are up, and no process is started anew while
they stop (a pool process killed under its master would be replaced). A process that ends by
itself (a port already in use) stops the others and makes the command fail."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import socket
import subprocess
import time

import pytest

from tests.support.servers import REPO, free_port, run_all_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STOP_TIMEOUT = 10


def _session(sid: int) -> set[int]:
    """Every live process of the terminal session bin/run-all leads (an exited one that is
    not reaped yet, a zombie, is not running)."""
    return set(_processes(sid))


def _servers(sid: int) -> dict[int, str]:
    """Of those, web's, the worker's and beat's (not the script's own sleeps and probes)."""
    return {pid: args for pid, args in _processes(sid).items() if any(n in args for n in ("gunicorn", "celery"))}


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _processes(sid: int) -> dict[int, str]:
    out = subprocess.run(["ps", "-ww", "-e", "-o", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        pid, session, stat, args = line.split(None, 3)
        if int(session) == sid and not stat.startswith("Z"):
            found[int(pid)] = args
    return found


class Terminal:
    """bin/run-all on a pseudo-terminal of its own, as a person runs it (the pty is its
    controlling terminal, so a typed Ctrl-C is SIGINT to its foreground process group)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.output = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become bin/run-all at once
            # A terminal's Ctrl-C, whatever this run inherited: started in the background by a
            # shell without job control, pytest ignores SIGINT, and a shell script cannot trap
            # a signal that was ignored when it started.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)
            os.chdir(REPO)
            os.execvpe("bash", ["bash", "bin/run-all"], env)

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    return

    def wait_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while b"matchplatform is up" not in self.output:
            assert time.monotonic() < deadline, self.output.decode(errors="replace")[-3000:]
            self.read(0.3)

    def exit_code(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self.read(0.2)
        return None

    def ctrl_c_and_watch(self) -> tuple[float, dict[int, str]]:
        """Type Ctrl-C; the seconds until nothing of the session is left, and the server
        processes (gunicorn's, Celery's) that appeared after the keypress (none may)."""
        before = _servers(self.pid)
        os.write(self.fd, b"\x03")
        pressed = time.monotonic()
        appeared: dict[int, str] = {}
        while time.monotonic() - pressed < STOP_TIMEOUT + 10:
            self.read(0.2)
            appeared |= {
                pid: f"{args} (parent {_parent(pid)}: {before.get(_parent(pid), '?')[:60]})"
                for pid, args in _servers(self.pid).items()
                if pid not in before and pid not in appeared
            }
            if not _session(self.pid):
                return time.monotonic() - pressed, appeared
        raise AssertionError(f"still running {STOP_TIMEOUT + 10} s after Ctrl-C: {sorted(_session(self.pid))}")

    def close(self) -> None:
        for pid in _session(self.pid):
            os.kill(pid, signal.SIGKILL)
        os.close(self.fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


@pytest.fixture
def terminal():
    opened: list[Terminal] = []

    def start(**env: str) -> Terminal:
        term = Terminal(run_all_env(port=free_port(), env={"STOP_TIMEOUT": str(STOP_TIMEOUT), **env}))
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


def test_ctrl_c_once_everything_is_up_stops_all_three_without_a_respawn(terminal):
    term = terminal(WEB_WORKERS="2", WORKER_CONCURRENCY="2")
    term.wait_up()
    # Web answers before the worker has its pool: wait for all seven (gunicorn and its two
    # workers, the worker and its two pool processes, beat), then for a second with no change.
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while len(seen) < 7 or set(_servers(term.pid)) != seen:
        assert time.monotonic() < deadline, _servers(term.pid)
        seen = set(_servers(term.pid))
        term.read(1.0)
    seconds, appeared = term.ctrl_c_and_watch()
    assert appeared == {}, f"started while stopping: {appeared}"
    assert seconds <= STOP_TIMEOUT + 5
    assert term.exit_code(timeout=5) == 0


def test_ctrl_c_while_it_starts_stops_everything_at_once(terminal):
    term = terminal()
    term.read(1.5)  # web, worker and beat are starting; the script probes for web
    assert b"matchplatform is up" not in term.output
    # (A server still starting may finish starting its pool first: that is no respawn.)
    seconds, _ = term.ctrl_c_and_watch()
    assert seconds <= STOP_TIMEOUT + 5


def test_a_port_in_use_stops_the_others_and_fails(terminal):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        term = terminal(PORT=str(taken.getsockname()[1]))
        code = term.exit_code(timeout=60)
    assert code not in (None, 0), term.output.decode(errors="replace")[-2000:]
    assert b"ended by itself" in term.output
    assert _session(term.pid) == set()
