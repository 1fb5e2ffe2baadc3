from django.db import migrations


def create_row(apps, schema_editor):
    # One row, always there: bumping it is then a single atomic UPDATE, and two first
    # writers cannot both start from "no row".
    apps.get_model("runs", "InvestorCorpusVersion").objects.get_or_create(pk=1, defaults={"version": 0})


class Migration(migrations.Migration):
    dependencies = [("runs", "0002_duration_bigint")]
    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
