"""The per-process background flusher (ops/flusher.py), shared by the request metrics
(ops/slo/recorder.py) and the rollout exposures (flags/rollouts/exposures.py): one daemon
thread per process (a forked child starts its own), a flush every N seconds, one more at
exit, on and off from the settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flags.rollouts import exposures
from ops.flusher import Flusher
from ops.models import RouteMinute
from ops.slo import recorder

REPO = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Calls:
    def __init__(self, *, fail: bool = False) -> None:
        self.n = 0
        self.fail = fail
        self.threads: set[str] = set()

    def __call__(self) -> int:
        self.n += 1
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("the database is gone")
        return 0


@pytest.fixture
def flushers() -> Iterator[list[Flusher]]:
    """Flushers the test makes, stopped after it."""
    made: list[Flusher] = []
    yield made
    for flusher in made:
        flusher.stop()


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_one_thread_per_process_flushes_every_period(flushers):
    calls = Calls()
    flusher = Flusher(name="t-flush-periodic", flush=calls, seconds=lambda: 0.5, enabled=lambda: True)
    flushers.append(flusher)
    assert flusher.ensure()
    assert flusher.ensure() and flusher.ensure()
    assert len(_threads("t-flush-periodic")) == 1, "ensure starts the thread once"
    assert calls.n == 0, "the first flush is a period away"
    assert wait_for(lambda: calls.n >= 3, timeout=5), calls.n
    assert calls.threads == {"t-flush-periodic"}
    flusher.stop()
    assert not flusher.running() and not _threads("t-flush-periodic")


@pytest.mark.parametrize(("enabled", "seconds"), [(False, 5.0), (True, 0.0), (True, -1.0)])
def test_settings_say_whether_a_thread_runs(flushers, enabled, seconds):
    calls = Calls()
    flusher = Flusher(name="t-flush-off", flush=calls, seconds=lambda: seconds, enabled=lambda: enabled)
    flushers.append(flusher)
    assert not flusher.ensure()
    assert not flusher.running() and not _threads("t-flush-off")


def test_a_flush_that_raises_is_logged_and_the_thread_goes_on(flushers, caplog):
    calls = Calls(fail=True)
    flusher = Flusher(name="t-flush-failing", flush=calls, seconds=lambda: 0.5, enabled=lambda: True)
    flushers.append(flusher)
    flusher.ensure()
    assert wait_for(lambda: calls.n >= 2, timeout=5), "the thread died with the first failure"
    assert flusher.running()
    assert "t-flush-failing: the flush failed" in caplog.text


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_thread(flushers):
    calls = Calls()
    flusher = Flusher(name="t-flush-fork", flush=calls, seconds=lambda: 0.5, enabled=lambda: True)
    flushers.append(flusher)
    flusher.ensure()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not follow it
        try:
            before = len(_threads("t-flush-fork"))
            was_running = flusher.running()
            started = flusher.ensure()
            flushed = wait_for(lambda: calls.n >= 1, timeout=5)
            os.write(write, f"{before} {int(was_running)} {int(started)} {int(flushed)} {calls.n}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    before, was_running, started, flushed, _ = (int(x) for x in answer.split())
    assert (before, was_running) == (0, 0), "a forked child has no flusher thread until it starts one"
    assert started and flushed, "the child's own thread flushes"
    assert len(_threads("t-flush-fork")) == 1, "the parent keeps its one thread"


@pytest.mark.slow
def test_the_buffer_is_flushed_once_more_when_the_process_exits(tmp_path):
    out = tmp_path / "flushed"
    script = textwrap.dedent(
        f"""
        import django
        django.setup()
        from ops.flusher import Flusher

        def flush():
            with open({str(out)!r}, "a") as f:
                f.write("flushed\\n")

        assert Flusher(name="t-exit", flush=flush, seconds=lambda: 3600.0, enabled=lambda: True).ensure()
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "matchplatform.settings"}
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=60)
    assert out.read_text() == "flushed\n", "one flush at exit (the period is an hour away)"


# --- the two users ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_request_metrics_thread_is_the_shared_flusher_and_writes_the_buffer(settings):
    settings.REQUEST_METRICS_FLUSH_THREAD = True
    settings.REQUEST_METRICS_FLUSH_SECONDS = 0.5
    flusher = recorder.request_metrics_flusher()
    flusher.stop()
    recorder.request_metrics_discard()
    try:
        recorder.request_metrics_flusher_ensure()
        assert flusher.running() and len(_threads("request-metrics-flush")) == 1
        recorder.request_metrics_record(route="t.flusher", duration_ms=12.0, status=200, at=datetime.now(UTC))
        assert wait_for(lambda: RouteMinute.objects.filter(route="t.flusher").exists(), timeout=10)
        assert recorder.request_metrics_buffer().pending() == 0
    finally:
        flusher.stop()
        recorder.request_metrics_discard()


def test_the_exposures_thread_is_the_shared_flusher_and_follows_its_settings(settings):
    flusher = exposures.exposure_flusher()
    flusher.stop()
    try:
        settings.ROLLOUTS_EXPOSURE_FLUSH_THREAD = False
        exposures.exposure_flusher_ensure()
        assert not flusher.running()
        settings.ROLLOUTS_EXPOSURE_FLUSH_THREAD = True
        settings.ROLLOUTS_EXPOSURE_FLUSH_SECONDS = 0.0
        exposures.exposure_flusher_ensure()
        assert not flusher.running()
        settings.ROLLOUTS_EXPOSURE_FLUSH_SECONDS = 5.0
        exposures.exposure_flusher_ensure()
        assert flusher.running() and len(_threads("rollout-exposures-flush")) == 1
    finally:
        flusher.stop()
