"""Make sure the demo accounts have API tokens, print them, and write them where the README's
curl examples read them (``make run`` runs this after ``seed_members``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from proposals.identity.services import api_token_issue, staff_account_ensure

STAFF_USER = "admin"
MEMBER_USER = "demo"  # created by seed_members
FILE_NAME = "demo-credentials.txt"


class Command(BaseCommand):
    help = (
        f"Give the staff account '{STAFF_USER}' (created if missing) and the member '{MEMBER_USER}' API "
        f"tokens, print them and write them to MATCHPLATFORM_VAR_DIR/{FILE_NAME} as shell variables."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.VAR_DIR / FILE_NAME
        staff, created = staff_account_ensure(username=STAFF_USER)
        lines = [
            "# matchplatform demo credentials, written by `python manage.py demo_credentials` (make run).",
            f"# Load them into a shell with:  . {path}",
            '# Send a token as:  curl -H "Authorization: Token $DEMO_TOKEN" ...',
            "",
            f"# {STAFF_USER}: staff. Password: `python manage.py changepassword {STAFF_USER}` sets one"
            + (" (created now without one)." if created else "."),
            f"ADMIN_TOKEN={api_token_issue(user=staff)[0].key}",
        ]
        member = get_user_model().objects.filter(username=MEMBER_USER).first()
        if member is None:
            lines += ["", f"# {MEMBER_USER}: not found (python manage.py seed_members creates the demo members)."]
        else:
            lines += [
                "",
                f"# {MEMBER_USER}: member. Password: the one seed_members printed, or "
                f"`python manage.py changepassword {MEMBER_USER}` sets one.",
                f"DEMO_TOKEN={api_token_issue(user=member)[0].key}",
            ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)  # tokens are credentials: readable by their owner only
        path.write_text("\n".join(lines) + "\n")
        self.stdout.write("\n".join(line for line in lines if line))
        self.stdout.write(self.style.SUCCESS(f"API tokens written to {path}"))
