"""Seeding the demo corpus: ``manage.py seed_demo``'s investors, COPY against the ORM.

    python -m bench.seed            # 1,000,000 investors through COPY; 100,000 through the ORM
    python -m bench.seed --quick    # tiny sizes, seconds (make test runs it)

Ours is ``runs.demo.investors_seed`` as ``seed_demo`` calls it on PostgreSQL: numpy draws a
block of 20,000 rows at a time, each distinct set of sectors, stages or countries becomes
JSON once, and the rows stream to the server through COPY while the next block is drawn.
The plain alternative, in the same run, is the same rows through the ORM's batched
``bulk_create`` (what ``seed_demo`` does on SQLite, and ``copy=False`` forces): a model and
its JSON per row. The ORM runs at a tenth of the size (``--orm``) and its rate is reported
per second. Both load into a fresh bench database (``<name>_bench_seed`` next to
``DATABASE_URL``'s, dropped at the end); the rows each path stored are compared.

Target: 1,000,000 investors in <= 20 s (``--target-seconds``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common.db import bench_database, database_migrate, database_recreate, one, tables_truncate
from bench.common.env import DEFAULT_DATABASE_URL, BenchError, bench_env, django_setup, quick_parse
from bench.common.frame import bench_frame
from bench.common.report import load_average, log, verdict

SUFFIX = "_bench_seed"


@dataclass(frozen=True)
class Load:
    path: str
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000, help="investors through COPY (ours)")
    parser.add_argument("--orm", type=int, default=100_000, help="investors through the ORM (the plain way)")
    parser.add_argument("--target-seconds", type=float, default=20.0, help="ours must load --count within this")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard bound on the whole run")
    return quick_parse(parser, argv, {"count": 40_000, "orm": 5_000, "max_seconds": 120.0})


def _load(*, path: str, count: int, seed: int) -> Load:
    from runs.demo import investors_seed
    from runs.models import Investor

    tables_truncate(Investor._meta.db_table, restart_identity=True, cascade=True)
    started = time.monotonic()
    stored = investors_seed(count=count, seed=seed, copy=path == "copy")
    seconds = time.monotonic() - started
    found = Investor.objects.count()
    if stored != count or found != count:
        raise BenchError(f"{path}: asked for {count:,} investors, stored {stored:,}, found {found:,}")
    log(f"{path}: {count:,} investors in {seconds:.2f} s ({count / seconds:,.0f}/s)")
    return Load(path=path, count=count, seconds=seconds)


def _same_rows(*, count: int, seed: int) -> bool:
    """The first ``count`` rows of a seed are the same through either path: a checksum of
    every stored column."""
    from runs.demo import investors_seed
    from runs.models import Investor

    columns = "id, name, sectors::text, stages::text, countries::text, check_min, check_max, activity"
    columns += ", sector_mask, stage_mask, country_mask"
    table = Investor._meta.db_table
    digest = f"SELECT md5(string_agg(concat_ws('|', {columns}), ',' ORDER BY id)) FROM {table}"
    sums = []
    for copy in (True, False):
        tables_truncate(Investor._meta.db_table, restart_identity=True, cascade=True)
        investors_seed(count=count, seed=seed, copy=copy)
        sums.append(one(digest))
    return sums[0] == sums[1]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    db = bench_database(base_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, suffix=SUFFIX)
    loads: list[Load] = []
    same = False
    load_before = load_after = ""
    with bench_frame(db=db, keep=False, max_seconds=args.max_seconds) as frame:
        log(f"recreating database {db.name} (the database in DATABASE_URL is not touched)")
        database_recreate(db)
        django_setup(bench_env(DATABASE_URL=db.url, DB_POOL="false"))
        database_migrate()
        load_before = load_average()
        loads.append(_load(path="copy", count=args.count, seed=42))
        loads.append(_load(path="orm", count=args.orm, seed=42))
        same = _same_rows(count=min(args.orm, 25_000), seed=7)
        load_after = load_average()
    if frame.failed:
        return 1

    ours, plain = loads
    print()
    print(f"load average: {load_before} before, {load_after} after (other processes share these cores)")
    print()
    print(f"{'path':<44} | {'investors':>9} | {'seconds':>7} | {'investors/s':>11} | 1M at this rate")
    print("-" * 96)
    for load, label in (
        (ours, "ours: numpy blocks + COPY (PostgreSQL)"),
        (plain, "plain: ORM bulk_create (SQLite's path)"),
    ):
        million = 1_000_000 / load.rate if load.rate else float("inf")
        print(f"{label:<44} | {load.count:>9,} | {load.seconds:>7.2f} | {load.rate:>11,.0f} | {million:>7.1f} s")
    print(f"ours ÷ plain, investors/s: {ours.rate / plain.rate:.1f}x")
    print()
    million_s = ours.seconds * 1_000_000 / ours.count
    ok = verdict(
        million_s <= args.target_seconds,
        f"1,000,000 investors through seed_demo's COPY path in {million_s:.1f} s <= {args.target_seconds:.0f} s"
        + ("" if ours.count == 1_000_000 else f" (scaled from {ours.count:,})"),
        quick=args.quick,
    )
    verdict(same, "correctness: both paths store the same rows for a seed (checksum of every column)")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
