from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Now

from matchplatform.exceptions import ErrorCode, NotFound
from ops.selectors import queue_history_for
from runs.models import REFUSED_INPUT_CODES, RUN_FAILED_ON_OUR_SIDE, MatchRun, MatchRunStatus, StartupInvestorMatch
from runs.queue import runs_queue


def match_run_get(*, run_id: object) -> MatchRun:
    import uuid

    try:
        key = uuid.UUID(str(run_id))
    except ValueError:
        raise NotFound("No match run with this id.", code=ErrorCode.RUN_NOT_FOUND) from None
    run = MatchRun.objects.select_related("startup").filter(run_id=key).first()
    if run is None:
        raise NotFound("No match run with this id.", code=ErrorCode.RUN_NOT_FOUND)
    return run


def match_run_error_public(*, run: MatchRun) -> tuple[str | None, str | None]:
    """(what went wrong, its error code) as anyone may read them: about the submitted URL,
    never the operators' detail in last_error (resolver answers, addresses, tracebacks)."""
    if run.error_message:
        return run.error_message, run.error_code or ErrorCode.SERVER_ERROR.value
    if run.status == MatchRunStatus.ERROR or run.last_error:
        return RUN_FAILED_ON_OUR_SIDE, ErrorCode.SERVER_ERROR.value
    return None, None


def match_run_refused_input(*, run: MatchRun) -> bool:
    """Whether the run failed because of what was submitted (left out of error rates)."""
    return run.status == MatchRunStatus.ERROR and run.error_code in REFUSED_INPUT_CODES


def match_run_matches(*, run: MatchRun) -> QuerySet[StartupInvestorMatch]:
    return StartupInvestorMatch.objects.filter(run=run).select_related("investor").order_by("rank")


def match_runs_available_count() -> int:
    return MatchRun.objects.filter(status=MatchRunStatus.QUEUED, available_at__lte=Now()).count()


def match_run_timeline(*, run: MatchRun) -> list[dict[str, Any]]:
    fields = ("created_at", "event", "from_status", "to_status", "lease_owner", "lease_token", "attempt", "error")
    return [
        {name: getattr(row, name) for name in fields}
        for row in queue_history_for(queue=runs_queue.label, item_id=run.pk)
    ]


_HOURLY_SQL = {
    "postgresql": "date_trunc('hour', created_at)",
    # "%%" because the statement goes through the driver's parameter formatting.
    "sqlite": "strftime('%%Y-%%m-%%d %%H:00:00', created_at)",
}


def match_runs_hourly(*, hours: int = 24) -> list[dict[str, Any]]:
    """Per hour of submission: totals, average and p95 duration, outcomes, average matches.

    Runs refused because of their input are counted apart (``refused_inputs``) and left out
    of ``errors`` and ``error_rate``, which are the platform's own failures. Computed in one
    SQL statement; the p95 is the nearest-rank percentile over finished runs, with window
    functions so that it runs on PostgreSQL and SQLite alike."""
    hour = _HOURLY_SQL.get(connection.vendor, _HOURLY_SQL["postgresql"])
    since_sql = (
        "statement_timestamp() - make_interval(hours => %s)"
        if connection.vendor == "postgresql"
        else "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || %s || ' hours')"
    )
    refused_codes = sorted(str(code) for code in REFUSED_INPUT_CODES)
    refused_sql = ", ".join(["%s"] * len(refused_codes))
    sql = f"""
        WITH r AS (
            SELECT {hour} AS hour, status, duration_ms, match_count,
                   CASE WHEN status = 'error' AND error_code IN ({refused_sql}) THEN 1 ELSE 0 END AS refused
            FROM runs_matchrun WHERE created_at >= {since_sql}
        ), ranked AS (
            SELECT hour, duration_ms,
                   ROW_NUMBER() OVER (PARTITION BY hour ORDER BY duration_ms) AS rn,
                   COUNT(*) OVER (PARTITION BY hour) AS n
            FROM r WHERE duration_ms IS NOT NULL AND refused = 0
        ), p95 AS (
            SELECT hour, MIN(duration_ms) AS p95_ms FROM ranked
            WHERE rn >= CEIL(0.95 * n) GROUP BY hour
        )
        SELECT r.hour,
               COUNT(*) AS total,
               AVG(CASE WHEN r.refused = 0 THEN r.duration_ms END) AS avg_ms,
               MAX(p95.p95_ms) AS p95_ms,
               SUM(CASE WHEN r.status = 'ready' THEN 1 ELSE 0 END) AS successes,
               SUM(CASE WHEN r.status = 'error' AND r.refused = 0 THEN 1 ELSE 0 END) AS errors,
               SUM(r.refused) AS refused,
               AVG(CASE WHEN r.status = 'ready' THEN r.match_count END) AS avg_matches
        FROM r LEFT JOIN p95 ON p95.hour = r.hour
        GROUP BY r.hour ORDER BY r.hour DESC
    """  # noqa: S608 - only the vendor's own expressions and placeholders are interpolated
    with connection.cursor() as cursor:
        cursor.execute(sql, [*refused_codes, hours])
        rows = cursor.fetchall()
    out = []
    for hour_value, total, avg_ms, p95_ms, successes, errors, refused, avg_matches in rows:
        finished = (successes or 0) + (errors or 0)
        out.append(
            {
                "hour": hour_value if isinstance(hour_value, str) else hour_value.isoformat(),
                "total": int(total),
                "avg_duration_ms": None if avg_ms is None else round(float(avg_ms), 1),
                "p95_duration_ms": None if p95_ms is None else int(p95_ms),
                "successes": int(successes or 0),
                "errors": int(errors or 0),
                "refused_inputs": int(refused or 0),
                "error_rate": round((errors or 0) / finished, 4) if finished else 0.0,
                "avg_matches": None if avg_matches is None else round(float(avg_matches), 1),
            }
        )
    return out
