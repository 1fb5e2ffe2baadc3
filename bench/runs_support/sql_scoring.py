"""The "score in one SQL query" alternative: the engine's formula as a single SELECT.

Every part is computed in ``real`` (float4) in the same order as ``runs.engine.scores_compute``
does in float32 numpy, so that both rank the same investors in the same order:

    sector  = bit_count(sector_mask & wanted) * float4(W_SECTOR / |wanted|)
    stage   = float4(W_STAGE) when the stage bit is set, else 0
    check   = clip(1 - max(lr - log10(max), log10(min) - lr, 0), 0, 1) * float4(W_CHECK)
    country = float4(W_COUNTRY) when the investor takes any country or that country
    score   = (((sector + stage) + check) + country) + float4(activity) * float4(W_ACTIVITY)

``ORDER BY score DESC, id LIMIT k`` is the engine's tie-break (position = id order). The
reasons are produced by the engine's own ``reasons_explain`` over the k rows the query
returns, so the stored matches have the same shape as the engine's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from django.db import connection

from runs import engine
from runs.engine import Corpus, ScoredInvestor, StartupProfile
from runs.vocab import COUNTRIES, STAGES

F32 = np.float32

_COLUMNS = "id, sector_mask, stage_mask, country_mask, check_min, check_max, activity"


def _f32(value: float) -> float:
    """The float32 value as a Python float (exactly representable as ``real``)."""
    return float(F32(value))


def _bit(vocab: tuple[str, ...], value: str) -> int:
    try:
        return 1 << vocab.index(value)
    except ValueError:
        return 0


def score_sql(*, startup: StartupProfile, k: int) -> tuple[str, dict[str, Any]]:
    """The query and its parameters for one startup."""
    params: dict[str, Any] = {"k": k, "w_activity": _f32(engine.W_ACTIVITY)}
    wanted_count = int(startup.sector_mask).bit_count()
    if wanted_count:
        sector = "bit_count((sector_mask & %(wanted)s::bigint)::bit(64))::real * %(w_sector)s::real"
        params.update(wanted=int(startup.sector_mask), w_sector=_f32(engine.W_SECTOR / wanted_count))
    else:
        sector = "%(n_sector)s::real"
        params["n_sector"] = _f32(engine.W_SECTOR * engine.NEUTRAL)

    stage_bit = _bit(STAGES, startup.stage)
    if stage_bit:
        stage = "(CASE WHEN stage_mask & %(stage_bit)s::bigint <> 0 THEN %(w_stage)s::real ELSE 0::real END)"
        params.update(stage_bit=stage_bit, w_stage=_f32(engine.W_STAGE))
    else:
        stage = "%(n_stage)s::real"
        params["n_stage"] = _f32(engine.W_STAGE * engine.NEUTRAL)

    if startup.raise_amount and startup.raise_amount > 0:
        check = (
            "(GREATEST(LEAST(1::real - GREATEST("
            "%(log_raise)s::real - log10(GREATEST(check_max, 1)::float8)::real, "
            "log10(GREATEST(check_min, 1)::float8)::real - %(log_raise)s::real, "
            "0::real), 1::real), 0::real) * %(w_check)s::real)"
        )
        params.update(log_raise=_f32(math.log10(startup.raise_amount)), w_check=_f32(engine.W_CHECK))
    else:
        check = "%(n_check)s::real"
        params["n_check"] = _f32(engine.W_CHECK * engine.NEUTRAL)

    country_bit = _bit(COUNTRIES, startup.country.upper()) if startup.country else 0
    if country_bit:
        country = (
            "(CASE WHEN country_mask = 0 OR country_mask & %(country_bit)s::bigint <> 0"
            " THEN %(w_country)s::real ELSE 0::real END)"
        )
        params.update(country_bit=country_bit, w_country=_f32(engine.W_COUNTRY))
    else:
        country = "%(n_country)s::real"
        params["n_country"] = _f32(engine.W_COUNTRY * engine.NEUTRAL)

    score = f"(((({sector}) + {stage}) + {check}) + {country}) + activity::real * %(w_activity)s::real"
    sql = (
        f"SELECT {_COLUMNS}, score FROM ("
        f"SELECT {_COLUMNS}, {score} AS score FROM runs_investor"
        ") AS scored ORDER BY score DESC, id LIMIT %(k)s"
    )
    return sql, params


def sql_matches_rank(*, corpus: object = None, startup: StartupProfile, k: int) -> list[ScoredInvestor]:
    """Drop-in for ``runs.engine.matches_rank`` that scores in PostgreSQL (``corpus`` unused)."""
    sql, params = score_sql(startup=startup, k=k)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    checks = np.array([(r[4], r[5]) for r in rows], dtype=np.float64)
    logs = np.log10(np.maximum(checks, 1.0)).astype(F32)
    masks = np.array([(r[1], r[2], r[3]) for r in rows], dtype=np.int64).view(np.uint64)
    top = Corpus(
        version=0,
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        sector=np.ascontiguousarray(masks[:, 0]),
        stage=np.ascontiguousarray(masks[:, 1]),
        country=np.ascontiguousarray(masks[:, 2]),
        log_check_min=np.ascontiguousarray(logs[:, 0]),
        log_check_max=np.ascontiguousarray(logs[:, 1]),
        activity=np.array([r[6] for r in rows], dtype=F32),
    )
    return [
        ScoredInvestor(
            investor_id=int(row[0]),
            # PostgreSQL prints a real in its shortest round-tripping form: parse it back
            # as float32 to get the exact value the engine would have stored.
            score=round(float(F32(row[7])), 6),
            rank=rank,
            reasons=engine.reasons_explain(corpus=top, index=rank - 1, startup=startup),
        )
        for rank, row in enumerate(rows, start=1)
    ]
