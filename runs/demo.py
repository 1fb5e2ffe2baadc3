"""Deterministic demo data: the same seed gives the same investors and startups."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from psycopg.copy import QueuedLibpqWriter

from runs.models import Investor, Startup
from runs.services import corpus_version_bump
from runs.vocab import COUNTRIES, SECTORS, STAGES

_FIRST = ("North", "Blue", "Iron", "Bright", "Open", "Summit", "Harbor", "Atlas", "Pioneer", "Cedar", "Nova", "Vector")
_SECOND = ("Capital", "Ventures", "Partners", "Fund", "Labs", "Collective", "Angels", "Growth", "Seed Co", "Holdings")
_WORDS = ("Acme", "Zephyr", "Quill", "Orbit", "Lumen", "Kite", "Mosaic", "Pylon", "Sprout", "Tandem", "Vireo", "Yonder")
_CHECKS = (25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000)
_RAISES = (500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000, 8_000_000, 15_000_000, 30_000_000)

# Investors are drawn in blocks of this many rows, each block whole, so the first N
# investors of a seed are the same whatever the count asked for.
_BLOCK = 20_000
_COLUMNS = (
    "name",
    "sectors",
    "stages",
    "countries",
    "check_min",
    "check_max",
    "activity",
    "sector_mask",
    "stage_mask",
    "country_mask",
)


def demo_startup_url(index: int) -> str:
    return f"https://demo-startup-{index:03d}.example"


@dataclass(frozen=True)
class _Block:
    """One block of investors as columns (plain Python values, one per row). Sets of
    sectors, stages and countries are their bitmasks over ``runs.vocab``; their lists
    come from ``_Vocabulary``, built once per distinct mask."""

    first: int  # the number in the first row's name
    first_names: list[int]
    second_names: list[int]
    sector_masks: list[int]
    stage_masks: list[int]
    country_masks: list[int]
    check_min: list[int]
    check_max: list[int]
    activity: list[float]

    def rows(self) -> Iterator[tuple[int, int, int, int, int, int, int, int, float]]:
        """Per row: its name's number, first and second name, the three masks, check min
        and max, activity."""
        return zip(
            range(self.first, self.first + len(self.activity)),
            self.first_names,
            self.second_names,
            self.sector_masks,
            self.stage_masks,
            self.country_masks,
            self.check_min,
            self.check_max,
            self.activity,
            strict=True,
        )


def _subset_masks(rng: np.random.Generator, *, rows: int, size: int, low: int, high: int) -> np.ndarray:
    """Per row, a uniformly drawn subset of ``low``..``high`` distinct entries of a
    vocabulary of ``size``, as a bitmask: Floyd's sampling, one step for every row at once
    (a row drawing k entries takes part in the last k steps)."""
    k = rng.integers(low, high, size=rows, endpoint=True)
    one = np.int64(1)
    masks = np.zeros(rows, dtype=np.int64)
    for step in range(high):
        j = size - high + step
        bits = one << rng.integers(0, j, size=rows, endpoint=True)
        # Floyd: an entry drawn already is replaced by entry j, which no earlier step could draw.
        drawn = np.where(masks & bits, one << j, bits)
        masks |= np.where(step >= high - k, drawn, 0)
    return masks


def _investor_blocks(*, count: int, seed: int) -> Iterator[_Block]:
    """The investors of ``seed`` a block at a time, drawn with numpy, with the same shape
    as ever: 1-4 sectors, a run of 1-3 consecutive stages starting anywhere from pre-seed
    to series-c, no countries (30 %) or 1-3, a check range of 1-3 steps up ``_CHECKS``."""
    rng = np.random.default_rng(seed)
    checks = np.array(_CHECKS, dtype=np.int64)
    start = 0
    while start < count:
        rows = _BLOCK
        sector_masks = _subset_masks(rng, rows=rows, size=len(SECTORS), low=1, high=4)
        stage_first = rng.integers(0, len(STAGES) - 2, size=rows, endpoint=True)
        stage_span = rng.integers(1, 3, size=rows, endpoint=True)
        stage_masks = (np.left_shift(1, stage_span) - 1) << stage_first & ((1 << len(STAGES)) - 1)
        country_masks = np.where(
            rng.random(rows) < 0.3, 0, _subset_masks(rng, rows=rows, size=len(COUNTRIES), low=1, high=3)
        )
        low = rng.integers(0, len(_CHECKS) - 3, size=rows, endpoint=True)
        high = np.minimum(low + rng.integers(1, 3, size=rows, endpoint=True), len(_CHECKS) - 1)
        activity = np.round(rng.random(rows), 3)
        first_names = rng.integers(0, len(_FIRST), size=rows)
        second_names = rng.integers(0, len(_SECOND), size=rows)
        take = min(rows, count - start)
        yield _Block(
            first=start + 1,
            first_names=first_names[:take].tolist(),
            second_names=second_names[:take].tolist(),
            sector_masks=sector_masks[:take].tolist(),
            stage_masks=stage_masks[:take].tolist(),
            country_masks=country_masks[:take].tolist(),
            check_min=checks[low[:take]].tolist(),
            check_max=checks[high[:take]].tolist(),
            activity=activity[:take].tolist(),
        )
        start += take


class _Vocabulary(dict[int, Any]):
    """mask -> a value computed once per distinct mask (a list of names, or its JSON)."""

    def __init__(self, vocab: tuple[str, ...], *, alphabetical: bool, render: Callable[[list[str]], Any]) -> None:
        super().__init__()
        self.vocab = vocab
        self.alphabetical = alphabetical
        self.render = render

    def __missing__(self, mask: int) -> Any:
        names = [name for bit, name in enumerate(self.vocab) if mask >> bit & 1]
        value = self.render(sorted(names) if self.alphabetical else names)
        self[mask] = value
        return value


def _vocabularies(render: Callable[[list[str]], Any]) -> tuple[_Vocabulary, _Vocabulary, _Vocabulary]:
    # Sectors and stages are listed in vocabulary order, countries alphabetically.
    return (
        _Vocabulary(SECTORS, alphabetical=False, render=render),
        _Vocabulary(STAGES, alphabetical=False, render=render),
        _Vocabulary(COUNTRIES, alphabetical=True, render=render),
    )


def _copy_text(value: str) -> str:
    """``value`` escaped for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _investors_copy(*, blocks: Iterator[_Block], progress: Callable[[int], object] | None) -> int:
    """Stream the blocks into ``runs_investor`` with one COPY, each block one text chunk.
    The JSON of a sector, stage or country set is built once per distinct set. A writer
    thread sends the chunks, so the server stores one block while the next is drawn."""
    sectors, stages, countries = _vocabularies(lambda names: _copy_text(json.dumps(names)))
    firsts = [_copy_text(name) for name in _FIRST]
    seconds = [_copy_text(name) for name in _SECOND]
    done = 0
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    sql = f"COPY {Investor._meta.db_table} ({', '.join(_COLUMNS)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(sql, writer=QueuedLibpqWriter(cursor)) as copy:
        for block in blocks:
            copy.write(
                "".join(
                    [
                        f"{firsts[a]} {seconds[b]} {number}\t{sectors[s]}\t{stages[t]}\t{countries[c]}"
                        f"\t{low}\t{high}\t{act!r}\t{s}\t{t}\t{c}\n"
                        for number, a, b, s, t, c, low, high, act in block.rows()
                    ]
                )
            )
            done += len(block.activity)
            if progress:
                progress(len(block.activity))
    return done


def _investors_bulk_create(*, blocks: Iterator[_Block], progress: Callable[[int], object] | None) -> int:
    """The same rows through the ORM's batched inserts (SQLite, ``make run``)."""
    sectors, stages, countries = _vocabularies(lambda names: names)
    done = 0
    for block in blocks:
        Investor.objects.bulk_create(
            [
                Investor(
                    name=f"{_FIRST[a]} {_SECOND[b]} {number}",
                    sectors=list(sectors[s]),
                    stages=list(stages[t]),
                    countries=list(countries[c]),
                    check_min=low,
                    check_max=high,
                    activity=act,
                    sector_mask=s,
                    stage_mask=t,
                    country_mask=c,
                )
                for number, a, b, s, t, c, low, high, act in block.rows()
            ],
            batch_size=2_000,
        )
        done += len(block.activity)
        if progress:
            progress(len(block.activity))
    return done


def investors_seed(
    *, count: int, seed: int = 42, progress: Callable[[int], object] | None = None, copy: bool | None = None
) -> int:
    """Insert ``count`` investors; ``progress`` hears how many after each block (on
    PostgreSQL, handed to the COPY). On PostgreSQL rows stream in through COPY
    (``copy=False`` forces the ORM path, which stores the same rows); elsewhere through
    batched bulk inserts. The corpus version moves once, at the end."""
    use_copy = connection.vendor == "postgresql" if copy is None else copy
    blocks = _investor_blocks(count=count, seed=seed)
    with transaction.atomic():
        if use_copy:
            done = _investors_copy(blocks=blocks, progress=progress)
        else:
            done = _investors_bulk_create(blocks=blocks, progress=progress)
        corpus_version_bump()
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
