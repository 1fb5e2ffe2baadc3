from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from runs.demo import demo_startup_url, investors_seed, startups_seed
from runs.models import Investor


class Command(BaseCommand):
    help = "Load deterministic demo investors and startups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--investors", type=int, default=2000, help="How many investors (default 2000).")
        parser.add_argument("--startups", type=int, default=50, help="How many demo startups (default 50).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (same seed, same data).")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if investors already exist.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        investors, startups = options["investors"], options["startups"]
        if investors < 0 or startups < 0:
            raise CommandError("--investors and --startups must be zero or more")
        if options["if_empty"] and Investor.objects.exists():
            self.stdout.write("demo data already present; nothing to do")
            return
        with tqdm(
            total=investors, unit="investor", unit_scale=True, disable=options["no_progress"], desc="investors"
        ) as bar:
            made = investors_seed(count=investors, seed=options["seed"], progress=bar.update)
        made_startups = startups_seed(count=startups, seed=options["seed"] + 1)
        self.stdout.write(self.style.SUCCESS(f"seeded {made} investors and {made_startups} startups"))
        if startups:
            self.stdout.write(f"try: {demo_startup_url(1)}")
