from django.db import migrations, models

FLAGS = {
    "learning.enabled": (True, "Log each ranking decision with its propensity (discovery)."),
    "marketplace.suggest": (True, "Serve marketplace suggestions (discovery)."),
    "crush_mode.enabled": (False, "An experimental discovery surface; off in safe mode."),
}


def flags_create(apps, schema_editor):
    Flag = apps.get_model("flags", "Flag")
    for name, (everyone, note) in FLAGS.items():
        Flag.objects.get_or_create(name=name, defaults={"everyone": everyone, "note": note})
    # Running processes reload their flags snapshot when the stamp moves.
    Stamp = apps.get_model("flags", "Stamp")
    Stamp.objects.filter(pk=1).update(version=models.F("version") + 1)


def flags_remove(apps, schema_editor):
    apps.get_model("flags", "Flag").objects.filter(name__in=list(FLAGS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("discovery", "0002_discovery_queue"),
        ("flags", "0007_rollback_action_words"),
    ]

    operations = [migrations.RunPython(flags_create, flags_remove)]
