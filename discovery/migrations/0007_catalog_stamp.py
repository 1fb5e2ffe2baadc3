"""The candidate catalog's stamp (discovery.serving) and the triggers that move it.

Every statement that writes ``discovery_candidate`` or ``discovery_category`` sets the stamp
to a new random 63-bit value in the same transaction. Random, not a counter: two
transactions that both roll back must not leave two different catalogs behind the same
version (a process that loaded one of them would keep serving it). An upsert, not an update:
a flushed table (``manage.py flush``, a data-only restore) gets its row back at the next write."""

from django.db import migrations, models

TABLES = ("discovery_candidate", "discovery_category")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION discovery_catalog_stamp_bump() RETURNS trigger AS $$
BEGIN
    INSERT INTO discovery_catalogstamp (id, version)
    VALUES (1, floor(random() * 9223372036854775807)::bigint)
    ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
SQLITE_BUMP = (
    "INSERT INTO discovery_catalogstamp (id, version) VALUES (1, abs(random())) "
    "ON CONFLICT (id) DO UPDATE SET version = excluded.version;"
)


def forwards(apps, schema_editor):
    apps.get_model("discovery", "CatalogStamp").objects.using(schema_editor.connection.alias).get_or_create(pk=1)
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION)
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_catalog_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION discovery_catalog_stamp_bump()"
            )
    elif vendor == "sqlite":
        for table in TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_catalog_stamp_{event.lower()} AFTER {event} ON {table} "
                    f"BEGIN {SQLITE_BUMP} END"
                )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_stamp ON {table}")
        elif vendor == "sqlite":
            for event in ("insert", "update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_stamp_{event}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS discovery_catalog_stamp_bump()")


class Migration(migrations.Migration):
    dependencies = [("discovery", "0006_indexes_by_time")]

    operations = [
        migrations.CreateModel(
            name="CatalogStamp",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.BigIntegerField(default=0)),
            ],
            options={"verbose_name": "catalog stamp"},
        ),
        migrations.RunPython(forwards, backwards),
    ]
