"""Row-level security on the member-owned tables (PostgreSQL only; nothing on SQLite): see
discovery.row_security for the policies, the scopes and the role production connects as.
The statements are written here, not imported, so the migration stays what it was."""

from django.db import migrations

TABLES = (
    "discovery_userinterest",
    "discovery_intentsignal",
    "discovery_learningevent",
    "discovery_discoveryjob",
)
SYSTEM = "current_setting('matchplatform.scope', true) = 'system'"
OWNER = "user_id = NULLIF(current_setting('matchplatform.member_id', true), '')::bigint"


def _run(schema_editor, statements):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in statements:
        schema_editor.execute(statement)


def policies_create(apps, schema_editor):
    statements = []
    for table in TABLES:
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS {table}_system ON {table}",
            f"CREATE POLICY {table}_system ON {table} USING ({SYSTEM}) WITH CHECK ({SYSTEM})",
            f"DROP POLICY IF EXISTS {table}_owner ON {table}",
            f"CREATE POLICY {table}_owner ON {table} USING ({OWNER}) WITH CHECK ({OWNER})",
        ]
    _run(schema_editor, statements)


def policies_drop(apps, schema_editor):
    statements = []
    for table in TABLES:
        statements += [
            f"DROP POLICY IF EXISTS {table}_system ON {table}",
            f"DROP POLICY IF EXISTS {table}_owner ON {table}",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        ]
    _run(schema_editor, statements)


class Migration(migrations.Migration):
    dependencies = [("discovery", "0004_events")]

    operations = [migrations.RunPython(policies_create, policies_drop)]
