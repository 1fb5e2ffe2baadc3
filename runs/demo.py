"""Deterministic demo data: the same seed gives the same investors and startups."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection, transaction

from runs.models import Investor, Startup
from runs.services import corpus_version_bump
from runs.vocab import COUNTRIES, SECTORS, STAGES, country_mask, sector_mask, stage_mask

_FIRST = ("North", "Blue", "Iron", "Bright", "Open", "Summit", "Harbor", "Atlas", "Pioneer", "Cedar", "Nova", "Vector")
_SECOND = ("Capital", "Ventures", "Partners", "Fund", "Labs", "Collective", "Angels", "Growth", "Seed Co", "Holdings")
_WORDS = ("Acme", "Zephyr", "Quill", "Orbit", "Lumen", "Kite", "Mosaic", "Pylon", "Sprout", "Tandem", "Vireo", "Yonder")
_CHECKS = (25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000)
_RAISES = (500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000, 8_000_000, 15_000_000, 30_000_000)


def demo_startup_url(index: int) -> str:
    return f"https://demo-startup-{index:03d}.example"


def _investor_rows(*, count: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(count):
        sectors = sorted(rng.sample(SECTORS, rng.randint(1, 4)), key=SECTORS.index)
        first = rng.randint(0, len(STAGES) - 2)
        stages = list(STAGES[first : first + rng.randint(1, 3)])
        countries = [] if rng.random() < 0.3 else sorted(rng.sample(COUNTRIES, rng.randint(1, 3)))
        low = rng.randint(0, len(_CHECKS) - 3)
        check_min, check_max = _CHECKS[low], _CHECKS[min(low + rng.randint(1, 3), len(_CHECKS) - 1)]
        yield {
            "name": f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {i + 1}",
            "sectors": sectors,
            "stages": stages,
            "countries": countries,
            "check_min": check_min,
            "check_max": check_max,
            "activity": round(rng.random(), 3),
        }


def investors_seed(*, count: int, seed: int = 42, progress: Callable[[int], object] | None = None) -> int:
    """Insert ``count`` investors. On PostgreSQL rows stream in through COPY; elsewhere
    through batched bulk inserts. The corpus version moves once, at the end."""
    batch = 20_000
    rows = _investor_rows(count=count, seed=seed)
    done = 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            import json

            columns = ", ".join(
                [
                    *("name", "sectors", "stages", "countries", "check_min", "check_max", "activity"),
                    *("sector_mask", "stage_mask", "country_mask"),
                ]
            )
            connection.ensure_connection()
            raw = connection.connection
            assert raw is not None
            with raw.cursor() as cursor, cursor.copy(f"COPY runs_investor ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        (
                            row["name"],
                            json.dumps(row["sectors"]),
                            json.dumps(row["stages"]),
                            json.dumps(row["countries"]),
                            row["check_min"],
                            row["check_max"],
                            row["activity"],
                            sector_mask(row["sectors"]),
                            stage_mask(row["stages"]),
                            country_mask(row["countries"]),
                        )
                    )
                    done += 1
                    if progress and done % batch == 0:
                        progress(batch)
        else:
            chunk: list[Investor] = []
            for row in rows:
                chunk.append(
                    Investor(
                        **row,
                        sector_mask=sector_mask(row["sectors"]),
                        stage_mask=stage_mask(row["stages"]),
                        country_mask=country_mask(row["countries"]),
                    )
                )
                if len(chunk) == batch:
                    Investor.objects.bulk_create(chunk)
                    done += len(chunk)
                    chunk = []
                    if progress:
                        progress(batch)
            Investor.objects.bulk_create(chunk)
            done += len(chunk)
        corpus_version_bump()
    if progress and done % batch:
        progress(done % batch)
    return done


def startups_seed(*, count: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    startups = []
    for i in range(1, count + 1):
        sectors = sorted(rng.sample(SECTORS, rng.randint(1, 3)), key=SECTORS.index)
        name = f"{rng.choice(_WORDS)}{rng.choice(('', 'ly', 'io', 'AI', 'Hub'))} {i:03d}"
        startups.append(
            Startup(
                canonical_url=demo_startup_url(i),
                name=name,
                description=f"{name} builds {' and '.join(sectors)} products for modern teams.",
                sectors=sectors,
                stage=rng.choice(STAGES[:4]),
                raise_amount=rng.choice(_RAISES),
                country=rng.choice(COUNTRIES[:12]),
                quality_score=round(rng.uniform(0.3, 0.95), 2),
            )
        )
    created = Startup.objects.bulk_create(startups, ignore_conflicts=True)
    return len(created)
