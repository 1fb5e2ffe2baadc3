"""flags.Flag takes over from waffle.Flag (WAFFLE_FLAG_MODEL): the table, then every flag
waffle held, with its users and groups; then waffle's flag tables go (nothing reads them
once the model is swapped, and their links to auth_user would stop Django's flush).
Reversed: waffle's tables come back and the flags go back into them."""

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


FIELDS = (
    "name", "everyone", "percent", "testing", "superusers", "staff", "authenticated", "languages", "rollout", "note",
    "created", "modified",
)  # fmt: skip


def _copy(source, target) -> None:
    for old in source.objects.all():
        new, created = target.objects.get_or_create(
            name=old.name, defaults={field: getattr(old, field) for field in FIELDS if field != "name"}
        )
        if created:
            new.users.set(old.users.all())
            new.groups.set(old.groups.all())


def flags_from_waffle(apps, schema_editor):
    waffle_flag = apps.get_model("waffle", "Flag")
    _copy(waffle_flag, apps.get_model("flags", "Flag"))
    schema_editor.delete_model(waffle_flag)


def flags_to_waffle(apps, schema_editor):
    waffle_flag = apps.get_model("waffle", "Flag")
    schema_editor.create_model(waffle_flag)
    _copy(apps.get_model("flags", "Flag"), waffle_flag)


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('flags', '0001_initial_flags'),
        ('waffle', '0004_update_everyone_nullbooleanfield'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Flag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='The human/computer readable name.', max_length=100, unique=True, verbose_name='Name')),
                ('everyone', models.BooleanField(blank=True, help_text='Flip this flag on (Yes) or off (No) for everyone, overriding all other settings. Leave as Unknown to use normally.', null=True, verbose_name='Everyone')),
                ('percent', models.DecimalField(blank=True, decimal_places=1, help_text='A number between 0.0 and 99.9 to indicate a percentage of users for whom this flag will be active.', max_digits=3, null=True, verbose_name='Percent')),
                ('testing', models.BooleanField(default=False, help_text='Allow this flag to be set for a session for user testing', verbose_name='Testing')),
                ('superusers', models.BooleanField(default=True, help_text='Flag always active for superusers?', verbose_name='Superusers')),
                ('staff', models.BooleanField(default=False, help_text='Flag always active for staff?', verbose_name='Staff')),
                ('authenticated', models.BooleanField(default=False, help_text='Flag always active for authenticated users?', verbose_name='Authenticated')),
                ('languages', models.TextField(blank=True, default='', help_text='Activate this flag for users with one of these languages (comma-separated list)', verbose_name='Languages')),
                ('rollout', models.BooleanField(default=False, help_text='Activate roll-out mode?', verbose_name='Rollout')),
                ('note', models.TextField(blank=True, help_text='Note where this Flag is used.', verbose_name='Note')),
                ('created', models.DateTimeField(db_index=True, default=django.utils.timezone.now, help_text='Date when this Flag was created.', verbose_name='Created')),
                ('modified', models.DateTimeField(default=django.utils.timezone.now, help_text='Date when this Flag was last modified.', verbose_name='Modified')),
                ('rollout_group', models.CharField(blank=True, default='', help_text="The bucket group (empty: the flag's name). Flags that share a group share their cohorts.", max_length=100)),
                ('safe_value', models.BooleanField(blank=True, default=None, help_text='What this flag reads while safe mode is on (empty: safe mode leaves it alone).', null=True)),
                ('groups', models.ManyToManyField(blank=True, help_text='Activate this flag for these user groups.', to='auth.group', verbose_name='Groups')),
                ('users', models.ManyToManyField(blank=True, help_text='Activate this flag for these users.', to=settings.AUTH_USER_MODEL, verbose_name='Users')),
            ],
            options={
                'verbose_name': 'Flag',
                'verbose_name_plural': 'Flags',
                'abstract': False,
            },
        ),
        migrations.RunPython(flags_from_waffle, flags_to_waffle),
    ]
