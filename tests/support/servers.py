"""Real server processes for tests, all on the test's own database, Redis db and free ports:
gunicorn serving the project, bin/run-all (what ``make run`` starts), a process that holds
PostgreSQL connections, and a count of the web processes' connections."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def child_database_url() -> str:
    """The URL of the database this test is using, for child processes."""
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{s['NAME']}"


def child_redis_url() -> str:
    """The Redis database the test configuration gives Celery (and the cache), for child
    processes and for tests that need Redis itself."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        raise RuntimeError(f"this test needs Redis: run it with CELERY_BROKER_URL=redis://... (got {url!r})")
    return url


def _dsn() -> str:
    return child_database_url().replace("postgres://", "postgresql://", 1)


WEB_APPLICATION_NAME = "matchplatform-web"


@contextmanager
def web_connections_counter() -> Iterator[Callable[[], int]]:
    """A function counting the test database's connections held by web processes (their
    application_name, set by settings), read on a connection of its own."""
    conn = psycopg.connect(_dsn(), autocommit=True, application_name="tests-counter")
    lock = threading.Lock()

    def count() -> int:
        with lock:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                [WEB_APPLICATION_NAME],
            ).fetchone()
        return int(row[0]) if row else 0

    try:
        yield count
    finally:
        conn.close()


@contextmanager
def web_connections_peak(*, every_s: float = 0.05) -> Iterator[list[int]]:
    """The most connections web processes held at once while the block ran (``peak[0]``),
    sampled every ``every_s`` seconds."""
    peak = [0]
    done = threading.Event()
    with web_connections_counter() as count:

        def watch() -> None:
            while not done.wait(every_s):
                peak[0] = max(peak[0], count())

        watcher = threading.Thread(target=watch, name="web-connections-peak")
        watcher.start()
        try:
            yield peak
        finally:
            done.set()
            watcher.join(timeout=10)
            peak[0] = max(peak[0], count())


HOLDER = """
import sys, psycopg
dsn, count = sys.argv[1], int(sys.argv[2])
conns = [psycopg.connect(dsn, autocommit=True, application_name="tests-holder") for _ in range(count)]
print(len(conns), flush=True)
sys.stdin.read()
"""


@contextmanager
def connections_held(count: int) -> Iterator[int]:
    """Another process holding ``count`` connections to the test's own database until the
    block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, _dsn(), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != str(count):
            raise RuntimeError(f"could not hold {count} connections: {proc.communicate(timeout=10)[1][-2000:]}")
        yield count
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn_server(*, env: dict[str, str] | None = None, workers: int = 2, threads: int = 16) -> Iterator[str]:
    port = free_port()
    child_env = {**os.environ, "DATABASE_URL": child_database_url(), "OPS_WAKE_WORKERS": "false", **(env or {})}
    log = open(f"/tmp/gunicorn-test-{port}.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "matchplatform.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--backlog",
            "512",
            "--timeout",
            "30",
        ],
        cwd=REPO,
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/schema/", timeout=2):
                    break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: {Path(log.name).read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def run_all_env(*, port: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment bin/run-all gets in the tests: the test database and Redis, a port,
    this virtualenv's programs."""
    redis_url = child_redis_url()
    return {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "CELERY_BROKER_URL": redis_url,
        "CACHE_URL": redis_url,
        "PORT": str(port),
        "PY": sys.executable,
        "CELERY": str(BIN / "celery"),
        "GUNICORN": str(BIN / "gunicorn"),
        **(env or {}),
    }


@contextmanager
def run_all(*, env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[str]:
    """bin/run-all, as ``make run`` starts it (web, worker, beat), on the test database, the
    test configuration's Redis and a free port; yields the web's URL once it says it is up."""
    port = free_port()
    child_env = run_all_env(port=port, env=env)
    log = open(f"/tmp/run-all-test-{port}.log", "w+")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        ["bash", str(REPO / "bin" / "run-all")],
        cwd=REPO,
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while "matchplatform is up" not in Path(log.name).read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bin/run-all did not come up: {Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        # run-all stops its children on SIGTERM; the group kill is for anything left over.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


@contextmanager
def celery_worker_process(
    *, env: dict[str, str], name: str, log: Path, queue: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` (solo pool, no gossip, mingle or heartbeat) with ``env`` (give
    it the test's database and Redis db: ``child_database_url``, ``child_redis_url``), its
    output in ``log``, consuming ``queue`` (default: the default queue), in its own process
    group, which is stopped (SIGTERM, then SIGKILL) when the block ends."""
    command = [str(BIN / "celery"), "-A", "matchplatform", "worker", "--pool=solo", "--concurrency=1"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO", "-n", f"{name}@%h"]
    if queue is not None:
        command += ["-Q", queue]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
