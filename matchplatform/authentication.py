"""How the API knows its callers, and how failed sign-ins are counted (django-axes).

DRF loads this module while its own ``views`` module is being imported (it resolves the
authentication classes at class creation), which happens while the apps' models load: so
nothing from axes, the models or ``matchplatform.exceptions`` is imported at module level.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as DRF's throttles see it: ``NUM_PROXIES`` decides how much of
    ``X-Forwarded-For`` is believed, so a client cannot pick its own identity. Axes stores the
    address in an IP field, so anything that is not an address falls back to the socket's."""
    ident = BaseThrottle().get_ident(request)  # type: ignore[arg-type]
    try:
        return str(ipaddress.ip_address(ident))
    except ValueError:
        return request.META.get("REMOTE_ADDR") or None


def lockout_seconds() -> int:
    """How long a lockout lasts at most (a failure during it starts it again)."""
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = max(1, lockout_seconds() // 60)
    return (
        "Too many failed attempts to sign in, to this account or from this address. "
        f"Please wait {minutes} minutes and try again."
    )


def authentication_failure_record(*, request: HttpRequest, username: str | None = None) -> bool:
    """Count a failed authentication that did not go through ``authenticate()`` (a wrong API
    token, a refused Sign-In with Ethereum) against the client, as axes counts a wrong password;
    whether the client is now locked out."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    return bool(getattr(request, "axes_locked_out", False))


def client_locked_out(*, request: HttpRequest, username: str | None = None) -> bool:
    """Whether axes refuses this client (and account) now; for sign-in paths that do not call
    ``authenticate()``. One query, so only on those paths, never per request."""
    from axes.handlers.proxy import AxesProxyHandler

    return not AxesProxyHandler.is_allowed(request, {"username": username})


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """What axes's middleware answers when a sign-in locked a client out. Our own sign-in paths
    (the API's, the sign-in page) have already answered 429 in their own shape and keep it; any
    other (the admin's login form) gets a page that says so."""
    if original_response is not None and original_response.status_code == 429:
        response = original_response
    else:
        body = render_to_string("proposals/locked_out.html", {"message": lockout_message()}, request=request)
        response = HttpResponse(body, status=429)
    response["Retry-After"] = str(lockout_seconds())
    return response


@functools.cache
def _token_lookup(token_model: Any, user_model: Any) -> tuple[str, list[str], list[str]] | None:
    """DRF's token lookup (the token and its user, by key) as SQL, with the fields it reads
    (the token's, then the user's), built once; None for models with fields that convert
    their database values (matchplatform.auth's rule)."""
    from django.db import connection

    from matchplatform.auth import raw_readable_fields

    token_fields = raw_readable_fields(token_model)
    user_fields = raw_readable_fields(user_model)
    if token_fields is None or user_fields is None:
        return None
    quote = connection.ops.quote_name
    columns = ", ".join([f"t.{quote(f.column)}" for f in token_fields] + [f"u.{quote(f.column)}" for f in user_fields])
    user_fk = quote(token_model._meta.get_field("user").column)
    sql = (
        f"SELECT {columns} FROM {quote(token_model._meta.db_table)} t "  # noqa: S608 - names from model meta
        f"JOIN {quote(user_model._meta.db_table)} u ON u.{quote(user_model._meta.pk.column)} = t.{user_fk} "
        f"WHERE t.{quote(token_model._meta.pk.column)} = %s"
    )
    return sql, [f.attname for f in token_fields], [f.attname for f in user_fields]


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's API tokens (``Authorization: Token <key>``), where a wrong token is a failed
    authentication like a wrong password: counted per client, and a client locked out by it
    answers 429. Only a failure costs axes a query; a valid token is one query, as in DRF.

    On PostgreSQL that query is DRF's (the token with its user, ``select_related``) written once
    as SQL and run prepared (``ops.db.prepared_rows``), as matchplatform.auth reads a session's
    user: every API request makes it, and compiling it through the ORM each time cost more than
    the database spent answering it. Other databases take DRF's path."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        from django.contrib.auth import get_user_model
        from django.db import connection

        from ops.db import prepared_rows

        token_model: Any = self.get_model()
        user_model: Any = get_user_model()
        lookup = _token_lookup(token_model, user_model) if connection.vendor == "postgresql" else None
        if lookup is None:
            return super().authenticate_credentials(key)  # type: ignore[no-any-return]
        sql, token_names, user_names = lookup
        rows = prepared_rows(sql, [key])
        if not rows:
            raise exceptions.AuthenticationFailed("Invalid token.")
        n = len(token_names)
        token = token_model.from_db(connection.alias, token_names, rows[0][:n])
        token.user = user = user_model.from_db(connection.alias, user_names, rows[0][n:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, token

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            # A locked-out client may still use a valid token: tokens are too long to guess, so
            # the lockout only stops the guessing, not the members sharing the client's address.
            if authentication_failure_record(request=request._request):
                from matchplatform.exceptions import LockedOut

                raise LockedOut() from None
            raise
