"""Django's PostgreSQL backend (``ENGINE = "matchplatform.postgresql"``), unchanged but for
one thing: a pool timeout is recorded on the request being served, so that
``matchplatform.db_pool.PoolExhaustedMiddleware`` answers it with a 503 (see there why the
exception alone cannot get there). Django's documented way to extend a backend: subclass
its ``DatabaseWrapper``."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import PoolTimeout, TooManyRequests

from matchplatform.db_pool import pool_exhausted_in_request, pool_exhaustion_record


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if self.pool is None:  # type: ignore[attr-defined]  # Django 5.1+; django-stubs lack it
            return super().get_new_connection(conn_params)
        if pool_exhausted_in_request():
            # This request already waited DB_POOL_TIMEOUT for nothing: do not make it wait
            # again for its error path (Django's wrapper turns this into OperationalError).
            raise PoolTimeout("no connection: this request already timed out waiting for one")
        try:
            return super().get_new_connection(conn_params)
        except (PoolTimeout, TooManyRequests):
            pool_exhaustion_record()
            raise
