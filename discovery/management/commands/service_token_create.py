"""manage.py service_token_create <username>: a service account for an external scheduler
that drives POST /api/queue-worker, and its API token, printed once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from discovery.services import service_token_create
from matchplatform.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Create a service account (no password: it can only present its token) allowed to run the queue "
        "worker (discovery.run_queue_worker), and print its API token once. --rotate replaces an existing token."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="Replace the account's token (the old one stops).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = service_token_create(username=options["username"], rotate=options["rotate"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Service token for {options['username']} (shown once; send it as 'Authorization: Token <key>'):"
        )
        self.stdout.write(key)
