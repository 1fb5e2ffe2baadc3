"""manage.py seed_discovery: load the Day-0 starter catalog (six interests, six categories,
their map, six candidates). Safe to run again: it adds nothing that is there."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from discovery.services import catalog_seed_day0


class Command(BaseCommand):
    help = "Load discovery's Day-0 starter catalog (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = catalog_seed_day0()
        self.stdout.write(
            f"discovery catalog: {counts.interests} interests, {counts.categories} categories, "
            f"{counts.mappings} mappings, {counts.candidates} candidates"
        )
