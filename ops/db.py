"""Small database expressions the apps share, each computed by the database's own clock."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Func, IntegerField
from django.utils.asyncio import async_unsafe


class MillisecondsSince(Func):
    """Whole milliseconds from a timestamp column to the database's now."""

    output_field = IntegerField()

    def __init__(self, expression: Any, **extra: Any) -> None:
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="(EXTRACT(EPOCH FROM (STATEMENT_TIMESTAMP() - %(expressions)s)) * 1000)::bigint",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="CAST(ROUND((julianday('now') - julianday(%(expressions)s)) * 86400000) AS INTEGER)",
            **extra,
        )


def db_now() -> datetime:
    """The database's clock, as an aware UTC datetime."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
            (text,) = cursor.fetchone()
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        cursor.execute("SELECT statement_timestamp()")
        (value,) = cursor.fetchone()
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


@async_unsafe
def prepared_cursor() -> Any:
    """A cursor for a hot read path whose SQL text repeats from request to request.

    On PostgreSQL (psycopg 3) it binds parameters on the server, so psycopg prepares each
    statement on this connection (``prepare_threshold`` runs first, 0 by default: at once) and
    PostgreSQL stops planning it on every request: for the matches feed the plan cost more
    than running it. Django's own cursors bind on the client and are never prepared.
    ``DB_PREPARED_STATEMENTS=false`` (for a pooler that cannot keep prepared statements) and
    other databases get Django's cursor. Used as a context manager, like
    ``connection.cursor()``; query logging and ``execute_wrapper`` see its statements.
    ``prepared_rows`` runs a statement through it and survives a migration."""
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return connection.cursor()
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if not is_psycopg3:
        return connection.cursor()
    # Django's connection.cursor() (its _cursor), with this cursor class in place of its own.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_cursor_class()(connection.connection))  # type: ignore[attr-defined]


@cache
def _cursor_class() -> Any:
    """Django's server-binding cursor, remembering the statement it ran when psycopg runs it
    prepared (psycopg then keeps no query of its own, and Django's query log and
    ``CaptureQueriesContext`` would show None for its SQL)."""
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]
    from psycopg.types.datetime import TimestamptzLoader

    class Cursor(ServerBindingCursor):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if settings.USE_TZ:
                # Django's timestamptz loader is a Python subclass of psycopg's (to pin the
                # zone, or drop it without USE_TZ), so psycopg cannot use its C loader: on a
                # feed page, 20 rows of timestamps, it was 0.4 ms of a 1 ms read. The
                # connection's zone is UTC under USE_TZ, so psycopg's own loader gives the
                # same aware UTC datetimes.
                self.adapters.register_loader("timestamptz", TimestamptzLoader)

        def _send_query_prepared(self, name: bytes, pgq: Any, **kwargs: Any) -> Any:
            self._query = pgq
            return super()._send_query_prepared(name, pgq, **kwargs)

    return Cursor


def _plan_changed(error: DatabaseError) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) == "0A000" and "cached plan must not change result type" in str(cause)


def prepared_rows(sql: str, params: Any) -> list[tuple[Any, ...]]:
    """Every row of ``sql``, run through ``prepared_cursor``.

    A statement prepared before a migration changed a column it returns (a longer varchar,
    say) fails with "cached plan must not change result type" on every connection that
    prepared it. Outside a transaction, the connection's prepared statements are then dropped
    (psycopg sees the DEALLOCATE and forgets them too) and the statement runs once more,
    prepared anew; inside one the error stands, as the transaction is already aborted."""

    def run() -> list[tuple[Any, ...]]:
        with prepared_cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    try:
        return run()
    except DatabaseError as error:
        if not _plan_changed(error) or connection.in_atomic_block:
            raise
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    return run()
