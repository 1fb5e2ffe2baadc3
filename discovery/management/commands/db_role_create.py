"""manage.py db_role_create: make (or bring up to date) the PostgreSQL role the app connects
as, so that row-level security applies to it (discovery.row_security): not a superuser, not
the tables' owner, no BYPASSRLS, with the data rights the app needs (SELECT, INSERT, UPDATE,
DELETE on every table of the schema, the sequences), and the same rights on the tables later
migrations create (default privileges of the role running this, which must be the owner that
runs the migrations). Safe to run again: it changes nothing that is already right.

Run it as the owner (the role migrations run as), then point the web and worker processes'
DATABASE_URL at the new role; keep migrating with the owner's URL."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from discovery.row_security import role_check


class Command(BaseCommand):
    help = "Create or update the app's PostgreSQL role (row-level security applies to it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default=None, help="The role's name (default: DB_APP_ROLE).")
        parser.add_argument(
            "--password-env",
            default="DB_APP_ROLE_PASSWORD",
            help="The environment variable holding its password; set: the role can log in with "
            "it (never passed on the command line, where ps would show it).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            self.stdout.write("Row-level security is PostgreSQL-only: no role to create here.")
            return
        role = options["role"] or settings.DB_APP_ROLE
        password = os.environ.get(options["password_env"], "")
        with transaction.atomic():
            statements = role_grant_statements(role=role, password=password)
        for line in statements:
            self.stdout.write(line)
        check = role_check(role=role)
        if not check.subject_to_row_security:
            raise CommandError(f"{role}: {check.detail}")
        self.stdout.write(self.style.SUCCESS(f"{role}: {check.detail}"))


def role_grant_statements(*, role: str, password: str = "") -> list[str]:
    """Create ``role`` if missing and grant it the app's data rights (idempotent); returns
    what it did, one line each (the password never appears). Refuses the connected role
    itself and a superuser: those bypass row security, and taking rights from them here
    could lock operators out."""
    quoted = connection.ops.quote_name(role)
    done: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), current_schema()")
        me, database, schema = cursor.fetchone()
        if role == me:
            raise CommandError(f"{role} is the role running this (the owner): the app needs another one.")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
        row = cursor.fetchone()
        if row is not None and row[0]:
            raise CommandError(f"{role} is a superuser: it bypasses row security; pick another name.")
        if row is None:
            cursor.execute(f"CREATE ROLE {quoted}")
            done.append(f"created role {role}")
        cursor.execute(f"ALTER ROLE {quoted} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT")
        if password:
            cursor.execute(f"ALTER ROLE {quoted} LOGIN PASSWORD %s", [password])
            done.append(f"{role} can log in (password from the environment)")
        db, sch = connection.ops.quote_name(database), connection.ops.quote_name(schema)
        grants = [
            f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {quoted}",
            f"GRANT USAGE ON SCHEMA {sch} TO {quoted}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {sch} TO {quoted}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {sch} TO {quoted}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {sch} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {sch} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {quoted}",
        ]
        for statement in grants:
            cursor.execute(statement)
        done.append(f"granted {role} the app's data rights on {database}.{schema} (and on tables to come)")
    return done
