"""Owner-only data enforced by PostgreSQL itself: row-level security on the member-owned tables.

Threat model. The API already answers 404 for another member's interests, signals, decisions
and discovery jobs (discovery.api filters every query by the signed-in member). That is one
``.filter(user=...)`` forgotten away from a leak: a new view, a selector reused in the wrong
place, an admin action exposed to members. With row-level security the database filters the
rows too, so a bug in a view cannot read or write another member's rows: a member request's
queries see only that member's rows of the tables in ``PROTECTED_TABLES``, and a write of
someone else's row is refused (the policies' ``WITH CHECK``). It protects against application
bugs, not against someone who can run arbitrary SQL as the application's role (they can set
the scope themselves) and not against the table owner or a superuser (both bypass it).

How it works.

- The migration (0005_row_security) enables row-level security on ``PROTECTED_TABLES`` and
  creates two permissive policies per table, keyed by two settings of the session:
  ``<table>_system`` admits every row when ``matchplatform.scope`` is ``system``, and
  ``<table>_owner`` admits the rows whose ``user_id`` is ``matchplatform.member_id``. A
  session that set neither sees nothing (it fails closed).
- Production connects as a dedicated role that is neither a superuser nor the tables' owner
  (``manage.py db_role_create``; migrations keep running as the owner), or the policies are
  bypassed. The tables are not ``FORCE``d: the owner (migrations, an operator's psql) sees all.
- Scopes: ``member:<id>`` for a signed-in member's request (not staff), ``system`` for staff
  requests, Celery workers, management commands and anything outside a request, and ``none``
  for an anonymous request (it sees no member rows). ``RowSecurityMiddleware`` sets a
  request's scope after Django's authentication, before the view; when the user changes
  during the request (DRF authenticating an API token in the view, a sign-in, a sign-out) an
  execute wrapper sets the new scope before the next query.
- Cost: the scope is set with one ``set_config`` statement, only when it differs from what the
  connection already has (tracked per physical connection, in Python): a member request
  costs one cheap statement (an API-token request, anonymous until DRF knows it, at most
  two), and none when its pooled or persistent connection last served the same scope. It is
  never "restored" at the end of a request: the next user of the connection sets the one it
  needs before its first query (the middleware for a request; ``connection_created`` for a
  connection opened or taken from the pool, which outside requests means ``system``). Nothing
  at all on SQLite, with ``ROW_SECURITY_SCOPE=off``, or, with ``auto`` (the default), on a
  superuser's connection, which bypasses the policies anyway (read from what the server
  reported at connect, no query): the test suite, connected as a superuser, runs no extra
  statement and its query counts are unchanged.
- A setting changed inside a transaction goes back with its rollback: a scope set inside an
  atomic block is tracked as uncertain and set again by the next request or connection user.
  Within the request, a rollback can only take the scope back to one the request had before,
  never to another member's.

Code that must act for everyone inside a member or anonymous request (an endpoint called with
a service token, say) wraps that work in ``system_scope()``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse

# The member-owned tables (each has a user_id column), protected by the policies of 0005.
PROTECTED_TABLES = (
    "discovery_userinterest",
    "discovery_intentsignal",
    "discovery_learningevent",
    "discovery_discoveryjob",
)
GUC_SCOPE = "matchplatform.scope"
GUC_MEMBER = "matchplatform.member_id"

SCOPE_SYSTEM = "system"
SCOPE_NONE = "none"
_MEMBER_PREFIX = "member:"
# The middleware decides the request's scope once the user is known: a connection opened
# meanwhile (taken from the pool by the session's user lookup) waits for it.
_DEFERRED = "deferred"
_UNCERTAIN = "uncertain:"

# The request being served (its user decides the scope), the scope wanted outside a request's
# user (None: system), and an override that wins over both (system_scope()).
_request: ContextVar[HttpRequest | None] = ContextVar("row_security_request", default=None)
_wanted: ContextVar[str | None] = ContextVar("row_security_wanted", default=None)
_override: ContextVar[str | None] = ContextVar("row_security_override", default=None)
_busy: ContextVar[bool] = ContextVar("row_security_busy", default=False)
# What each physical connection (the driver's object, pooled or persistent) was last set to.
_applied: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

# Whether the process connects as a superuser (``auto``: then nothing is set); None: not known
# until its first connection (the server reports it at connect).
_superuser: bool | None = None

SQL_SET = "SELECT set_config(%s, %s, false), set_config(%s, %s, false)"


def scope_for_user(user: Any) -> str:
    """The scope a request made by ``user`` runs in: staff see everything (they act for the
    platform), a member their own rows, anyone else none."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SCOPE_NONE
    if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
        return SCOPE_SYSTEM
    return f"{_MEMBER_PREFIX}{int(user.pk)}"


def member_scope(user_id: int) -> str:
    return f"{_MEMBER_PREFIX}{int(user_id)}"


def scope_wanted() -> str:
    """The scope the code running now should have: an override's, else the request's (from
    its user as it is now), else system."""
    override = _override.get()
    if override is not None:
        return override
    request = _request.get()
    if request is not None:
        return scope_for_user(getattr(request, "user", None))
    return _wanted.get() or SCOPE_SYSTEM


def enforced(connection: BaseDatabaseWrapper) -> bool:
    """Whether this connection's scope matters: PostgreSQL, not turned off, and (``auto``) not
    a superuser's connection (read from what the server reported at connect, no query)."""
    if connection.vendor != "postgresql":
        return False
    mode = settings.ROW_SECURITY_SCOPE
    if mode == "off":
        return False
    if mode == "on":
        return True
    global _superuser
    raw = connection.connection
    if raw is not None:
        _superuser = raw.info.parameter_status("is_superuser") == "on"
    return _superuser is False


def scope_apply(connection: BaseDatabaseWrapper, scope: str) -> bool:
    """Set ``scope`` on the connection if it is open, enforced and not already there; whether
    a statement ran. Runs on the driver's connection (not through Django's cursor, whose
    execute wrappers would come back here)."""
    raw = connection.connection
    if raw is None or scope == _DEFERRED or not enforced(connection):
        return False
    tracked = _applied.get(raw)
    if tracked == scope or (tracked == _UNCERTAIN + scope and connection.in_atomic_block):
        return False
    scope_kind, member_id = SCOPE_NONE, ""
    if scope.startswith(_MEMBER_PREFIX):
        scope_kind, member_id = "member", scope[len(_MEMBER_PREFIX) :]
    elif scope == SCOPE_SYSTEM:
        scope_kind = SCOPE_SYSTEM
    raw.execute(SQL_SET, [GUC_SCOPE, scope_kind, GUC_MEMBER, member_id])
    # Inside a transaction a rollback would take the setting back: trusted while a
    # transaction is open, set again after it.
    _applied[raw] = scope if not connection.in_atomic_block else _UNCERTAIN + scope
    return True


def _guard(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Before every query of an enforced connection: its scope is the one the code running now
    wants (a check in Python; a statement only when it changed)."""
    if not _busy.get():
        token = _busy.set(True)  # a lazy user's lookup runs queries too
        try:
            scope_apply(context["connection"], scope_wanted())
        finally:
            _busy.reset(token)
    return execute(sql, params, many, context)


def guard_install(connection: BaseDatabaseWrapper) -> None:
    """Put the guard on the connection (for its lifetime, reconnections included). First in
    the list: Django's ``execute_wrapper()`` blocks pop the last one when they end."""
    if _guard not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _guard)


def on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """A connection just opened or taken from the pool gets the guard, and the scope of the
    code that asked for it (system outside requests) before its first query."""
    if connection.alias != "default" or not enforced(connection):
        return
    guard_install(connection)
    raw = connection.connection
    if raw is not None and _applied.get(raw, "").startswith(_UNCERTAIN):
        del _applied[raw]
    scope_apply(connection, scope_wanted())


@contextlib.contextmanager
def scope_override(scope: str) -> Iterator[None]:
    """Run the block in ``scope`` (whatever the request's); the code after it gets its own
    back before its next query."""
    token = _override.set(scope)
    try:
        if enforced(default_connection):
            guard_install(default_connection)
            scope_apply(default_connection, scope)
        yield
    finally:
        _override.reset(token)


def system_scope() -> contextlib.AbstractContextManager[None]:
    """Act for the platform (every member's rows) inside a member or anonymous request: e.g.
    an endpoint authenticated by a service token that runs the workers."""
    return scope_override(SCOPE_SYSTEM)


class RowSecurityMiddleware:
    """Sets the request's row-security scope from its user (after AuthenticationMiddleware),
    before the view; the guard follows the user if it changes during the request (DRF's token
    authentication, a sign-in or a sign-out) before the next query. See the module's docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.ROW_SECURITY_SCOPE == "off" or default_connection.vendor != "postgresql":
            return self.get_response(request)
        wanted = _wanted.set(_DEFERRED)
        try:
            if _superuser is None and settings.ROW_SECURITY_SCOPE == "auto":
                default_connection.ensure_connection()  # the process's first request: who are we?
            if not enforced(default_connection):
                return self.get_response(request)  # a superuser's connection: nothing to do
            guard_install(default_connection)
            # The session's user, loaded now (a token caller is anonymous until DRF
            # authenticates it in the view: none until then, its own rows after).
            scope_for_user(request.user)
            current = _request.set(request)
            try:
                scope_apply(default_connection, scope_wanted())
                return self.get_response(request)
            finally:
                _request.reset(current)
        finally:
            _wanted.reset(wanted)


# --- reads: are the policies there, and does a role come under them ----------------------------


def policies_present() -> dict[str, list[str]]:
    """Each protected table's policies, and ``"(row security off)"`` in place of them when the
    table does not have row security enabled (PostgreSQL only)."""
    with default_connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity, p.polname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
            "LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname = ANY(%s) ORDER BY 1, 3",
            [list(PROTECTED_TABLES)],
        )
        found: dict[str, list[str]] = {table: [] for table in PROTECTED_TABLES}
        for table, enabled, policy in cursor.fetchall():
            if not enabled:
                found[table] = ["(row security off)"]
            elif policy:
                found[table].append(policy)
    return found


@dataclass(frozen=True)
class RoleCheck:
    subject_to_row_security: bool
    detail: str


def role_check(*, role: str) -> RoleCheck:
    """Whether connecting as ``role`` puts the app under the policies: the role exists, is no
    superuser, has no BYPASSRLS, and does not own (nor inherit the owner of) a protected table."""
    with default_connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        row = cursor.fetchone()
        if row is None:
            return RoleCheck(False, "no such role")
        if row[0] or row[1]:
            return RoleCheck(False, "a superuser or BYPASSRLS role: the policies do not apply to it")
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(%s) "
            "AND pg_has_role(%s, tableowner, 'USAGE') ORDER BY 1",
            [list(PROTECTED_TABLES), role],
        )
        owned = [r[0] for r in cursor.fetchall()]
    if owned:
        return RoleCheck(False, f"owns {', '.join(owned)} (owners bypass the policies)")
    return RoleCheck(True, "row-level security applies to it")
