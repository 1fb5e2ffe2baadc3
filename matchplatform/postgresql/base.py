"""Django's PostgreSQL backend (``ENGINE = "matchplatform.postgresql"``), with two changes for
the web's connection pool:

- a pool timeout is recorded on the request being served, so that
  ``matchplatform.db_pool.PoolExhaustedMiddleware`` answers it with a 503 (see there why the
  exception alone cannot get there);
- a connection taken from the pool is checked without a round trip. Django's pool check
  (``CONN_HEALTH_CHECKS``) sends an empty query to the server for every connection handed
  out, so every request paid a round trip before its first statement (a fifth of a
  suggestion request's time in the web process). Here the pool hands connections out
  unchecked and this backend looks at the connection's socket instead: a connection the
  server closed (a restart, ``pg_terminate_backend``, an idle timeout) has its goodbye
  waiting there, readable. Only then does it send the empty query, and a connection that
  fails it goes back to the pool, which drops it, and the next one is tried; so a restart
  costs no request an error. A healthy idle connection has nothing to read and costs no
  query, unless it sat unused longer than ``DB_POOL_CHECK_IDLE_SECONDS`` (30 s): then it
  is asked the empty query anyway, since a firewall or load balancer that dropped an idle
  flow leaves nothing on the socket. ``DB_CONN_HEALTH_CHECKS=false`` turns the check off.

Django's documented way to extend a backend: subclass its ``DatabaseWrapper``."""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from matchplatform.db_pool import pool_exhausted_in_request, pool_exhaustion_record


def connection_alive(conn: Any, *, idle_seconds: float = 0.0) -> bool:
    """Whether a pooled connection can be used: nothing waiting on its socket (no query
    sent), or else it answers an empty query. A dead one is closed. A connection unused for
    longer than ``DB_POOL_CHECK_IDLE_SECONDS`` is asked the query anyway: a firewall or load
    balancer that dropped an idle flow leaves nothing to read on the socket."""
    if conn.closed:
        return False
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
        readable = bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        readable = True
    if not readable and idle_seconds <= settings.DB_POOL_CHECK_IDLE_SECONDS:
        return True
    try:
        ConnectionPool.check_connection(conn)  # reads what was waiting: an error if it was a goodbye
    except psycopg.Error:
        conn.close()
        return False
    return True


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = self.pool  # type: ignore[attr-defined]  # Django 5.1+; django-stubs lack it
        if pool is None:
            return super().get_new_connection(conn_params)
        if pool_exhausted_in_request():
            # This request already waited DB_POOL_TIMEOUT for nothing: do not make it wait
            # again for its error path (Django's wrapper turns this into OperationalError).
            raise PoolTimeout("no connection: this request already timed out waiting for one")
        # Every pooled connection may be dead (after a restart): try each, and hand out the
        # one after them (a new one) unchecked.
        attempts = int(pool.max_size) + 2
        for attempt in range(attempts):
            try:
                conn = super().get_new_connection(conn_params)
            except (PoolTimeout, TooManyRequests):
                pool_exhaustion_record()
                raise
            # When the connection was last handed out, kept on it: about how long it sat idle.
            now = time.monotonic()
            idle = now - getattr(conn, "matchplatform_handed_out", now)
            last = attempt == attempts - 1
            if last or not settings.DB_CONN_HEALTH_CHECKS or connection_alive(conn, idle_seconds=idle):
                conn.matchplatform_handed_out = now
                return conn
            pool.putconn(conn)  # closed: the pool discards it and opens a replacement
        raise AssertionError("unreachable: the last attempt returns")
