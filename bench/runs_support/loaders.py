"""Diagnostics for ``runs.engine.corpus_load`` (timed in the bench, never used by workers).

``corpus_load`` builds 7 million Python objects (``fetchall`` of 1M 7-tuples in text mode)
and then walks them three more times in list comprehensions. ``corpus_load_columns`` is a
prototype of a faster loader that produces the same arrays without any per-row Python
object: PostgreSQL packs each column into one ``bytea`` of big-endian 8-byte values
(``string_agg(int8send(col), '')``), the five values arrive in binary, ``np.frombuffer``
views them, and the id order is restored by one ``np.argsort`` instead of a server-side
(and, with the default work_mem, on-disk) sort.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import psycopg
from django.db import connection

from runs.engine import Corpus, corpus_load, corpus_version_read

_INT_COLUMNS = ("id", "sector_mask", "stage_mask", "country_mask", "check_min", "check_max")


def corpus_load_columns() -> Corpus:
    version = corpus_version_read()
    parts = [f"string_agg(int8send({c}), ''::bytea)" for c in _INT_COLUMNS]
    parts.append("string_agg(float8send(activity), ''::bytea)")
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    # Django's cursors are client-side-binding ones, which cannot ask for binary results.
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(f"SELECT {', '.join(parts)} FROM runs_investor", binary=True)
        row = cursor.fetchone()
    assert row is not None
    if row[0] is None:
        return corpus_load()  # empty corpus: let the production code build the empty arrays
    ids = np.frombuffer(row[0], dtype=">i8")
    order = np.argsort(ids, kind="stable")

    def column(blob: bytes, dtype: str) -> np.ndarray:
        return np.frombuffer(blob, dtype=dtype)[order]

    checks = [np.log10(np.maximum(column(row[i], ">i8").astype(np.float64), 1.0)).astype(np.float32) for i in (4, 5)]
    return Corpus(
        version=version,
        ids=ids[order].astype(np.int64),
        sector=column(row[1], ">i8").astype(np.int64).view(np.uint64),
        stage=column(row[2], ">i8").astype(np.int64).view(np.uint64),
        country=column(row[3], ">i8").astype(np.int64).view(np.uint64),
        log_check_min=checks[0],
        log_check_max=checks[1],
        activity=column(row[6], ">f8").astype(np.float32),
    )


@dataclass(frozen=True)
class LoadTimings:
    corpus_load_s: float
    fetchall_s: float  # the query + fetchall alone, inside corpus_load's recipe
    columns_s: float  # the prototype
    same_arrays: bool


def corpus_load_timings() -> LoadTimings:
    t0 = time.perf_counter()
    reference = corpus_load()
    t1 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, sector_mask, stage_mask, country_mask, check_min, check_max, activity"
            " FROM runs_investor ORDER BY id"
        )
        rows = cursor.fetchall()
    t2 = time.perf_counter()
    del rows
    t3 = time.perf_counter()
    fast = corpus_load_columns()
    t4 = time.perf_counter()
    same = all(
        np.array_equal(getattr(reference, name), getattr(fast, name))
        for name in ("ids", "sector", "stage", "country", "log_check_min", "log_check_max", "activity")
    )
    return LoadTimings(corpus_load_s=t1 - t0, fetchall_s=t2 - t1, columns_s=t4 - t3, same_arrays=same)
