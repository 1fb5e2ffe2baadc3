"""The bench's own PostgreSQL database (next to the one in ``DATABASE_URL``, never that one;
loopback only): naming, create, drop, reset, and small SQL helpers on Django's connection."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common.env import LOOPBACK, BenchError


@dataclass(frozen=True)
class BenchDatabase:
    name: str
    url: str  # the bench database, postgres:// form for DATABASE_URL
    admin_dsn: str  # the maintenance database, for CREATE / DROP

    @property
    def dsn(self) -> str:
        """The bench database, postgresql:// form for psycopg (and procrastinate)."""
        return self.url.replace("postgres://", "postgresql://", 1)


def bench_database(*, base_url: str, suffix: str) -> BenchDatabase:
    """``<name><suffix>`` next to the database in ``base_url`` (or that name itself when it
    already ends in ``suffix``)."""
    parts = urlsplit(base_url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise BenchError(f"DATABASE_URL must be a postgres:// URL, got {parts.scheme}://")
    if (parts.hostname or "") not in LOOPBACK:
        raise BenchError(f"the bench only runs against a loopback database, not {parts.hostname!r}")
    base = parts.path.lstrip("/") or "matchplatform"
    name = base if base.endswith(suffix) else f"{base}{suffix}"
    url = urlunsplit(("postgres", parts.netloc, f"/{name}", parts.query, ""))
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    return BenchDatabase(name=name, url=url, admin_dsn=admin)


def database_drop(db: BenchDatabase) -> None:
    with psycopg.connect(db.admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))


def database_recreate(db: BenchDatabase) -> None:
    database_drop(db)
    with psycopg.connect(db.admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))


def database_migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def migrations_pending() -> list[str]:
    """The migrations not applied yet to Django's default database (``app.name``)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    targets = executor.loader.graph.leaf_nodes()
    return [f"{m.app_label}.{m.name}" for m, _ in executor.migration_plan(targets)]


def meta_read(dsn: str, *, table: str) -> dict[str, Any] | None:
    """A bench's marker (key -> JSON value, in ``table`` of its database: what was loaded, with
    which plan, whether it completed); None when there is none or the database is not there."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
            if not row or not row[0]:
                return None
            return {key: value for key, value in conn.execute(f"SELECT key, value FROM {table}").fetchall()}
    except psycopg.OperationalError:
        return None


def meta_write(conn: psycopg.Connection[Any], *, table: str, **values: Any) -> None:
    """Set keys of a bench's marker (the table made when missing)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key text PRIMARY KEY, value jsonb NOT NULL)")
    for key, value in values.items():
        conn.execute(
            f"INSERT INTO {table} (key, value) VALUES (%s, %s::jsonb)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [key, json.dumps(value)],
        )


def tables_truncate(*tables: str, restart_identity: bool = False, cascade: bool = False) -> None:
    """Empty ``tables`` in one statement (the reset between two measurements)."""
    statement = sql.SQL("TRUNCATE {}{}{}").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in tables),
        sql.SQL(" RESTART IDENTITY" if restart_identity else ""),
        sql.SQL(" CASCADE" if cascade else ""),
    )
    execute(statement.as_string())


def execute(statement: str, params: Any = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def rows(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


def one(statement: str, params: Any = None) -> Any:
    found = rows(statement, params)
    return found[0][0] if found else None


@dataclass
class QueryCount:
    n: int = 0
    seconds: float = 0.0  # time spent inside cursor.execute (round trip + the database's work)


@contextmanager
def queries_counted() -> Iterator[QueryCount]:
    """Count (and time) the statements Django's connection runs inside the block."""
    from django.db import connection

    counter = QueryCount()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counter.n += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            counter.seconds += time.perf_counter() - started

    with connection.execute_wrapper(wrapper):
        yield counter
