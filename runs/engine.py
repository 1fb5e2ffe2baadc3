"""The scoring engine: a startup against the whole investor corpus, vectorized.

Each worker process holds the corpus in memory as numpy arrays (about 50 bytes an
investor) and reloads it only when ``InvestorCorpusVersion`` moves, so a run costs a
version check, a few array operations and a top-K selection, never a reload.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from django.db import connection

from runs.vocab import COUNTRIES, SECTORS, STAGES

logger = logging.getLogger(__name__)

# Weights of the score's parts; they add up to 1 so a score reads as a fraction.
W_SECTOR = 0.45
W_STAGE = 0.20
W_CHECK = 0.15
W_COUNTRY = 0.10
W_ACTIVITY = 0.10
NEUTRAL = 0.5  # a part the startup gives no data for counts half


@dataclass(frozen=True)
class Corpus:
    version: int
    ids: np.ndarray
    sector: np.ndarray  # uint64 bitmasks
    stage: np.ndarray
    country: np.ndarray
    log_check_min: np.ndarray  # float32, log10 USD
    log_check_max: np.ndarray
    activity: np.ndarray  # float32 0..1

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class StartupProfile:
    sector_mask: int
    stage: str = ""
    raise_amount: int | None = None
    country: str = ""


@dataclass(frozen=True)
class ScoredInvestor:
    investor_id: int
    score: float
    rank: int
    reasons: list[str] = field(default_factory=list)


def corpus_version_read() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM runs_investorcorpusversion WHERE id = 1")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


_COLUMNS = ("id", "sector_mask", "stage_mask", "country_mask", "check_min", "check_max", "activity")


def _columns_postgresql() -> list[np.ndarray] | None:
    """The corpus as one binary blob per column: no Python object per investor, and no
    server-side sort (the id order is restored with one argsort)."""
    import psycopg

    parts = [f"string_agg(int8send({name}), ''::bytea)" for name in _COLUMNS[:-1]]
    parts.append("string_agg(float8send(activity), ''::bytea)")
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    # Django's cursors bind parameters client-side and cannot ask for binary results.
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(f"SELECT {', '.join(parts)} FROM runs_investor", binary=True)  # noqa: S608
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    columns = [np.frombuffer(blob, dtype=">i8").astype(np.int64) for blob in row[:-1]]
    columns.append(np.frombuffer(row[-1], dtype=">f8").astype(np.float64))
    order = np.argsort(columns[0], kind="stable")
    return [column[order] for column in columns]


def _columns_generic() -> list[np.ndarray] | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs_investor ORDER BY id")  # noqa: S608
        rows = cursor.fetchall()
    if not rows:
        return None
    ints = np.array([row[:-1] for row in rows], dtype=np.int64)
    activity = np.fromiter((row[-1] for row in rows), dtype=np.float64, count=len(rows))
    return [*(ints[:, i] for i in range(ints.shape[1])), activity]


def corpus_load() -> Corpus:
    """Read the whole corpus into arrays. The version is read first: a change that lands
    during the load bumps it again, so the next check reloads."""
    version = corpus_version_read()
    columns = _columns_postgresql() if connection.vendor == "postgresql" else _columns_generic()
    if columns is None:
        columns = [np.zeros(0, dtype=np.int64)] * 4 + [np.ones(0, dtype=np.int64)] * 2 + [np.zeros(0)]
    ids, sector, stage, country, check_min, check_max, activity = columns

    def log_checks(values: np.ndarray) -> np.ndarray:
        return np.log10(np.maximum(values.astype(np.float64), 1.0)).astype(np.float32)

    return Corpus(
        version=version,
        ids=np.ascontiguousarray(ids),
        sector=np.ascontiguousarray(sector).view(np.uint64),
        stage=np.ascontiguousarray(stage).view(np.uint64),
        country=np.ascontiguousarray(country).view(np.uint64),
        log_check_min=log_checks(check_min),
        log_check_max=log_checks(check_max),
        activity=activity.astype(np.float32),
    )


class CorpusCache:
    """The per-process corpus, reloaded only when the data version changes."""

    def __init__(self) -> None:
        self._corpus: Corpus | None = None
        self._lock = threading.Lock()
        self.loads = 0

    def get(self) -> Corpus:
        version = corpus_version_read()
        corpus = self._corpus
        if corpus is not None and corpus.version == version:
            return corpus
        with self._lock:
            if self._corpus is None or self._corpus.version != version:
                started = time.perf_counter()
                self._corpus = corpus_load()
                self.loads += 1
                logger.info(
                    "loaded investor corpus v%s: %s investors in %.2fs",
                    self._corpus.version,
                    len(self._corpus),
                    time.perf_counter() - started,
                )
            return self._corpus

    def clear(self) -> None:
        self._corpus = None


corpus_cache = CorpusCache()


def _bit(vocab: tuple[str, ...], value: str) -> int:
    try:
        return 1 << vocab.index(value)
    except ValueError:
        return 0


def scores_compute(*, corpus: Corpus, startup: StartupProfile) -> np.ndarray:
    """Every investor's score for this startup, as float32 in [0, 1]."""
    n = len(corpus)
    wanted = np.uint64(startup.sector_mask)
    wanted_count = int(startup.sector_mask).bit_count()
    if wanted_count:
        shared = np.bitwise_count(corpus.sector & wanted).astype(np.float32)
        score = shared * np.float32(W_SECTOR / wanted_count)
    else:
        score = np.full(n, W_SECTOR * NEUTRAL, dtype=np.float32)

    stage_bit = _bit(STAGES, startup.stage)
    if stage_bit:
        score += (corpus.stage & np.uint64(stage_bit) != 0).astype(np.float32) * np.float32(W_STAGE)
    else:
        score += np.float32(W_STAGE * NEUTRAL)

    if startup.raise_amount and startup.raise_amount > 0:
        # 1 inside [check_min, check_max], falling by one per decade outside it.
        log_raise = np.float32(math.log10(startup.raise_amount))
        off = np.maximum(np.maximum(log_raise - corpus.log_check_max, corpus.log_check_min - log_raise), 0)
        score += np.clip(1 - off, 0, 1) * np.float32(W_CHECK)
    else:
        score += np.float32(W_CHECK * NEUTRAL)

    country_bit = _bit(COUNTRIES, startup.country.upper()) if startup.country else 0
    if country_bit:
        fits = (corpus.country == 0) | (corpus.country & np.uint64(country_bit) != 0)
        score += fits.astype(np.float32) * np.float32(W_COUNTRY)
    else:
        score += np.float32(W_COUNTRY * NEUTRAL)

    score += corpus.activity * np.float32(W_ACTIVITY)
    return score


def top_indices(*, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties broken by position (investor id order),
    so the same corpus and startup always give the same ranking."""
    n = scores.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        candidates = np.arange(n)
    else:
        part = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[part].min()
        above = np.flatnonzero(scores > threshold)
        ties = np.flatnonzero(scores == threshold)[: k - above.shape[0]]
        candidates = np.concatenate([above, ties])
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order]


def _money(amount: float) -> str:
    if amount >= 1_000_000:
        return f"${amount / 1_000_000:g}M"
    if amount >= 1_000:
        return f"${amount / 1_000:g}k"
    return f"${amount:g}"


def reasons_explain(*, corpus: Corpus, index: int, startup: StartupProfile) -> list[str]:
    reasons: list[str] = []
    shared = [
        name
        for i, name in enumerate(SECTORS)
        if (int(corpus.sector[index]) >> i) & 1 and (startup.sector_mask >> i) & 1
    ]
    if shared:
        reasons.append("Invests in " + ", ".join(shared))
    stage_bit = _bit(STAGES, startup.stage)
    if stage_bit and int(corpus.stage[index]) & stage_bit:
        reasons.append(f"Writes {startup.stage} checks")
    lo, hi = 10 ** float(corpus.log_check_min[index]), 10 ** float(corpus.log_check_max[index])
    if startup.raise_amount:
        fits = lo * 0.999 <= startup.raise_amount <= hi * 1.001
        verb = "fits" if fits else "is near"
        reasons.append(
            f"Check size {_money(round(lo, -3))}–{_money(round(hi, -3))} {verb} a {_money(startup.raise_amount)} raise"
        )
    country_bit = _bit(COUNTRIES, startup.country.upper()) if startup.country else 0
    if country_bit:
        if int(corpus.country[index]) == 0:
            reasons.append("Invests in any country")
        elif int(corpus.country[index]) & country_bit:
            reasons.append(f"Invests in {startup.country.upper()}")
    activity = float(corpus.activity[index])
    if activity >= 0.7:
        reasons.append(f"Very active investor ({activity:.2f})")
    return reasons


def matches_rank(*, corpus: Corpus, startup: StartupProfile, k: int) -> list[ScoredInvestor]:
    scores = scores_compute(corpus=corpus, startup=startup)
    best = top_indices(scores=scores, k=k)
    return [
        ScoredInvestor(
            investor_id=int(corpus.ids[i]),
            score=round(float(scores[i]), 6),
            rank=rank,
            reasons=reasons_explain(corpus=corpus, index=int(i), startup=startup),
        )
        for rank, i in enumerate(best, start=1)
    ]
