"""The project's authentication backends: django-axes's lockout check, and Django's
``ModelBackend`` with the lookup every signed-in request makes (the session's user) as one
prepared statement.

``ModelBackend.get_user`` builds an ORM query per request (``User.objects.get(pk=...)``):
about 0.55 ms of CPU for compiling it, against 0.2 ms for running it, and PostgreSQL plans it
every time. Here, on PostgreSQL, the same row is read through ``ops.db.prepared_cursor`` and
turned into a ``User`` with ``Model.from_db``, as the ORM would; other databases, and a user
model with fields that convert their database values, take Django's path. Passwords,
permissions and ``user_can_authenticate`` are Django's."""

from __future__ import annotations

from functools import cache
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from ops.db import prepared_rows


class AxesBackend(AxesStandaloneBackend):
    """django-axes's lockout check, first of the backends: a locked-out account or client is
    refused before any password is hashed."""

    def authenticate(self, request: Any, username: Any = None, password: Any = None, **kwargs: Any) -> Any:
        if request is None:
            # No client to count: a call from code (Django's test Client.login, a shell), never
            # one from the web, where Django's, DRF's and our views all pass the request.
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class ModelBackend(DjangoModelBackend):
    def authenticate(self, request: Any, username: Any = None, password: Any = None, **kwargs: Any) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None and (username or kwargs.get(get_user_model().USERNAME_FIELD)):
            # A wrong password ends here: Django's ModelBackend, listed after this one for the
            # sessions signed in before it, would only hash the same password again.
            raise PermissionDenied
        return user

    def get_user(self, user_id: Any) -> Any:
        model = get_user_model()
        lookup = _lookup(model) if connection.vendor == "postgresql" else None
        if lookup is None:
            return super().get_user(user_id)
        try:
            pk = model._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        sql, attnames = lookup
        rows = prepared_rows(sql, [pk])
        if not rows:
            return None
        user = model.from_db(connection.alias, attnames, rows[0])
        return user if self.user_can_authenticate(user) else None


def raw_readable_fields(model: Any) -> list[Any] | None:
    """The model's columns, when a row read by hand can go to ``Model.from_db`` as the driver
    returns it; None for a model with fields that convert their database values (those take
    the ORM's path)."""
    fields = list(model._meta.concrete_fields)
    return None if any(hasattr(f, "from_db_value") for f in fields) else fields


@cache
def _lookup(model: Any) -> tuple[str, list[str]] | None:
    """The user model's row by id, as SQL, and the fields it reads, built once (PostgreSQL's
    quoting); None when ``raw_readable_fields`` says no."""
    fields = raw_readable_fields(model)
    if fields is None:
        return None
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    # Names from the model's meta; the id is a parameter.
    sql = f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s"  # noqa: S608
    return sql, [f.attname for f in fields]
