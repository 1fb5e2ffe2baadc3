"""Real server processes for tests: gunicorn serving the project against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
