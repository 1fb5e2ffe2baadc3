"""Every bench's quick mode (tiny sizes, seconds, no performance targets), so a bench that breaks
fails the suite instead of rotting until someone runs it.

Each runs as ``python -m bench.<name> --quick`` from the repository root, against the
database and Redis this test run uses: the bench derives its own database from the URL
(``<name>_bench_<what>``, created and dropped by the bench, never the test database) and
flushes the Redis db, as the suite's own fixtures do around every test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240

# Each bench's table headers (right-aligned cells, so only each one's end) and its closing
# verdict; a quick run must print them all.
EXPECTED = {
    "queue": ["system ", " jobs/s |", " ours ÷ theirs |", "PASS  correctness"],
    "runs": ["system ", " p50 ms |", " p99.9 ms |", " ours ÷ alt: p50 |", "PASS  correctness"],
    "proposals": [
        "== part 1: refill from empty",
        " ours p50 |",
        "== part 2: finalization lag",
        " p99 by finalized_at |",
        "PASS  correctness",
    ],
    "feed": ["| keyset p50 | keyset p95 | offset p50 | offset p95 | offset÷keyset p95", "PASS  correctness"],
    "seed": ["| investors/s | 1M at this rate", "ours ÷ plain, investors/s:", "PASS  correctness"],
    "flags": [" evals/s |", " p99 us |", " ours ÷ theirs", "| median s |  max s", "PASS  correctness"],
    "discovery": [" p95 ms |", " p95 ÷ ours", " jobs/s |", " p95 age done |", "PASS  correctness"],
}


def database_url() -> str:
    """The test run's PostgreSQL, as a URL (the benches refuse anything but loopback)."""
    db = settings.DATABASES["default"]
    assert "postgresql" in db["ENGINE"], f"the benches need PostgreSQL, the test run uses {db['ENGINE']}"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_url() -> str:
    """The test run's Redis db: the broker's, else the cache's."""
    for url in (settings.CELERY_BROKER_URL, settings.CACHE_URL):
        if url.startswith("redis://"):
            return url
    raise AssertionError("the benches need Redis: set CELERY_BROKER_URL or CACHE_URL to a redis:// URL")


def bench_argv(name: str) -> list[str]:
    argv = [sys.executable, "-m", f"bench.{name}", "--quick"]
    if name in ("queue", "runs"):
        argv += ["--redis-url", redis_url()]
    if name in ("feed", "flags", "discovery"):
        argv += ["--cache-url", redis_url()]
    return argv


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_bench_quick_mode_runs_and_prints_its_tables(name: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url()}
    done = subprocess.run(
        bench_argv(name), cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"bench.{name} --quick exited {done.returncode}:\n{output[-6000:]}"
    missing = [header for header in EXPECTED[name] if header not in done.stdout]
    assert not missing, f"bench.{name} --quick did not print {missing}:\n{done.stdout[-6000:]}"
    assert not re.search(r"^FAIL ", done.stdout, flags=re.MULTILINE), done.stdout[-6000:]
    assert "Traceback" not in output, output[-6000:]
