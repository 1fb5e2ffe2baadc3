"""manage.py discovery_gc [--dry-run]: delete the learning events and intent signals past
their retention (config discovery.retention), in batches, never the rows of an open
attribution window; prints each batch and the counts. The daily beat task runs the same."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from discovery.gc import INTENT_SIGNALS, LEARNING_EVENTS, retention_gc_run


class Command(BaseCommand):
    help = "Delete learning events and intent signals past their retention (--dry-run: only count them)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument(
            "--max-seconds",
            type=float,
            default=None,
            help="Stop between batches after this many seconds (default: run to the end).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = bool(options["dry_run"])

        def progress(table: str, batch: int, so_far: int) -> None:
            self.stdout.write(f"  {table}: deleted {batch} ({so_far} so far)")

        result = retention_gc_run(dry_run=dry_run, max_seconds=options["max_seconds"], progress=progress)
        verb = "would delete" if dry_run else "deleted"
        for table in (INTENT_SIGNALS, LEARNING_EVENTS):
            self.stdout.write(f"{table}: {verb} {result.deleted[table]} older than {result.cutoffs[table].isoformat()}")
        self.stdout.write(
            f"attribution window kept: {result.attribution_seconds} s; batches: {result.batches}; "
            f"{result.seconds:.1f} s" + ("" if result.complete else "; stopped at --max-seconds, rows remain")
        )
