"""Command-line options several benches take alike."""

from __future__ import annotations

import argparse
import os


def cache_url_option(parser: argparse.ArgumentParser, *, redis_db: int, what: str) -> None:
    """``--cache-url``: the served project's Redis cache (``what`` it holds), by default
    ``$BENCH_CACHE_URL`` or db ``redis_db`` on loopback (never db 0: the benches flush it)."""
    parser.add_argument(
        "--cache-url",
        default=os.environ.get("BENCH_CACHE_URL", f"redis://127.0.0.1:6379/{redis_db}"),
        help=f"{what} (default $BENCH_CACHE_URL or redis db {redis_db})",
    )
