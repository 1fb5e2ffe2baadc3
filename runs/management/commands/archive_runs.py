from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from runs.services import match_runs_archivable, match_runs_archive


class Command(BaseCommand):
    help = "Move finished runs older than N days (default RUNS_ARCHIVE_AFTER_DAYS) into the archive table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=int, default=settings.RUNS_ARCHIVE_AFTER_DAYS)
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if days < 0:
            raise CommandError("--older-than-days must be zero or more")
        total = match_runs_archivable(older_than_days=days).count()
        with tqdm(total=total, unit="run", disable=options["no_progress"], desc="archiving") as bar:
            moved = match_runs_archive(older_than_days=days, progress=bar.update)
        self.stdout.write(self.style.SUCCESS(f"archived {moved} run(s) finished more than {days} days ago"))
