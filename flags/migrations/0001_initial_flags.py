from django.db import migrations

MATCH_ENGINE_V1 = "match_engine_v1"
SAFE_MODE = "global.safe_mode"


def create_flags(apps, schema_editor):
    Flag = apps.get_model("waffle", "Flag")
    Switch = apps.get_model("waffle", "Switch")
    Flag.objects.get_or_create(
        name=MATCH_ENGINE_V1,
        defaults={"everyone": True, "note": "Guards the match-run submission UI."},
    )
    Switch.objects.get_or_create(
        name=SAFE_MODE,
        defaults={"active": False, "note": "Global safe mode, readable everywhere (health shows it)."},
    )


def remove_flags(apps, schema_editor):
    apps.get_model("waffle", "Flag").objects.filter(name=MATCH_ENGINE_V1).delete()
    apps.get_model("waffle", "Switch").objects.filter(name=SAFE_MODE).delete()


class Migration(migrations.Migration):
    dependencies = [("waffle", "0004_update_everyone_nullbooleanfield")]
    operations = [migrations.RunPython(create_flags, remove_flags)]
