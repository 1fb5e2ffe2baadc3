"""manage.py flag_check NAME [--user ID | --unit UNIT]: a flag as this member or unit gets it,
with the unit's bucket, for checking a rollout by hand (or in a script)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from waffle import get_waffle_flag_model

from flags.services import flag_enabled, rollout_bucket


class Command(BaseCommand):
    help = "Evaluate a flag for a member or a unit, as a request or a task would."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        who = parser.add_mutually_exclusive_group()
        who.add_argument("--user", type=int, help="a member's id")
        who.add_argument("--unit", help="an anonymous unit (the mp_unit cookie)")

    def handle(self, *args: Any, **options: Any) -> None:
        flag = get_waffle_flag_model().objects.filter(name=options["name"]).first()
        if flag is None:
            raise CommandError(f"There is no flag named {options['name']!r}.")
        user = None
        unit = options["unit"]
        if options["user"] is not None:
            user = get_user_model().objects.filter(pk=options["user"]).first()
            if user is None:
                raise CommandError(f"There is no member with id {options['user']}.")
            unit = str(user.pk)
        on = flag_enabled(flag.name, user=user, unit=unit)
        bucket = f" bucket {rollout_bucket(group=flag.group, unit=unit)}" if unit else ""
        percent = f" percent {flag.percent}" if flag.percent is not None else ""
        self.stdout.write(f"{flag.name}: {'on' if on else 'off'}{bucket}{percent}")
