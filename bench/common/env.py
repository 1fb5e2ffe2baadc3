"""The benches' shared prelude: where the project is, the environment a bench process and its
children run with, Django's setup, the quick mode's argument handling, and Redis (loopback
only, a db the bench may flush)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/matchplatform"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class BenchError(RuntimeError):
    pass


def bench_env(**overrides: str) -> dict[str, str]:
    """The environment of a bench's Django processes (its own and its children's): the
    project's settings, DEBUG off (no per-query logging), warnings only, no cache shared with
    anything else, no Celery wake-ups; ``overrides`` on top."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),  # for children that are not started with ``-m`` from ROOT (celery, gunicorn)
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="matchplatform.settings",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        CACHE_URL="",
        OPS_WAKE_WORKERS="false",
    )
    env.update(overrides)
    return env


def django_setup(env: Mapping[str, str] | None = None, **own: str) -> None:
    """Apply ``env`` (and ``own``: settings for this process only, not its children) to this
    process's environment, then ``django.setup()``. A bench's child process calls it with
    nothing: its parent started it with ``bench_env``."""
    os.environ.update(env or {})
    os.environ.update(own)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "matchplatform.settings")
    import django

    django.setup()


def quick_parse(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: Mapping[str, Any]
) -> argparse.Namespace:
    """Parse with a ``--quick`` flag: tiny sizes (``quick``, as parser defaults, so an option
    given on the command line still wins), a run of seconds that exercises every code path and
    checks no performance target."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: every code path, correctness checked, no performance target (make test runs it)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def redis_check(url: str) -> None:
    """A loopback ``redis://`` URL naming a db other than 0: the benches flush it."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or (parts.hostname or "") not in LOOPBACK:
        raise BenchError(f"the bench only uses a loopback redis:// URL, not {url!r}")
    if parts.path.strip("/") in {"", "0"}:
        raise BenchError(f"the Redis URL must name a db other than 0 (the bench flushes it): {url!r}")


def redis_flush(url: str) -> None:
    """FLUSHDB on the bench's own Redis database (the one in the URL) and nothing else."""
    import redis

    redis_check(url)
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()
