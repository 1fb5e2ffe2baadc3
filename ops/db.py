"""Small database expressions the apps share, each computed by the database's own clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Func, IntegerField


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
