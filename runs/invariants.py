"""The runs runbook as code: each check was once a query pasted into psql."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Avg, Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Now

from ops.invariants import Reading, figure_invariant, min_sample_default, rows_invariant
from runs.models import ACTIVE_RUN_STATUSES, REFUSED_INPUT_CODES, MatchRun, MatchRunStatus, StartupInvestorMatch

APP = "runs"
FINISHED = (MatchRunStatus.READY, MatchRunStatus.ERROR)


def _last_hour() -> Q:
    return Q(finished_at__gte=Now() - timedelta(hours=1))


def _refused() -> Q:
    """Runs that failed because of their input: not the platform's errors."""
    return Q(status=MatchRunStatus.ERROR, error_code__in=[str(code) for code in REFUSED_INPUT_CODES])


@rows_invariant(name="runs.one_active_run_per_url", app=APP, description="No canonical URL has two active runs")
def duplicate_active_runs() -> list[str]:
    return [
        f"{row['canonical_url']} x{row['n']}"
        for row in MatchRun.objects.filter(status__in=ACTIVE_RUN_STATUSES)
        .values("canonical_url")
        .annotate(n=Count("id"))
        .filter(n__gt=1)[:20]
    ]


@rows_invariant(
    name="runs.ready_runs_have_their_matches",
    app=APP,
    description="Every run finished in the last day has as many stored matches as its match_count",
)
def ready_runs_without_matches() -> list[str]:
    stored = StartupInvestorMatch.objects.filter(run=OuterRef("pk")).values("run").annotate(n=Count("id")).values("n")
    mismatched = (
        MatchRun.objects.filter(status=MatchRunStatus.READY, finished_at__gte=Now() - timedelta(days=1))
        .annotate(stored=Coalesce(Subquery(stored), 0))
        .exclude(stored=F("match_count"))
        .values_list("run_id", "match_count", "stored")[:20]
    )
    return [f"{run_id}: match_count={count} stored={n}" for run_id, count, n in mismatched]


@figure_invariant(
    name="runs.error_rate_last_hour",
    app=APP,
    description="Share of runs finished in the last hour that failed on the platform's side (refused inputs left out)",
    warn_above=0.05,
    critical_above=0.10,
    min_sample=min_sample_default,
)
def error_rate_last_hour() -> Reading:
    counts = MatchRun.objects.filter(_last_hour(), status__in=FINISHED).aggregate(
        total=Count("id"),
        errors=Count("id", filter=Q(status=MatchRunStatus.ERROR) & ~_refused()),
        refused=Count("id", filter=_refused()),
    )
    judged = counts["total"] - counts["refused"]
    return Reading(
        value=counts["errors"] / judged if judged else None,
        sample=judged,
        detail=f"{counts['errors']} error(s); {counts['refused']} refused input(s) left out",
    )


@figure_invariant(
    name="runs.refused_inputs_last_hour",
    app=APP,
    description="Runs finished in the last hour that were refused because of their input (a host that does not "
    "resolve or points inside, a page that is gone, not HTML or too large); never retried, not errors",
)
def refused_inputs_last_hour() -> float:
    return float(MatchRun.objects.filter(_last_hour(), _refused()).count())


@figure_invariant(
    name="runs.avg_duration_seconds_last_hour",
    app=APP,
    description="Average submit-to-ready time of runs finished in the last hour",
    warn_above=10,
    critical_above=30,
    unit="s",
    min_sample=min_sample_default,
)
def avg_duration_last_hour() -> Reading:
    figures = MatchRun.objects.filter(_last_hour(), status=MatchRunStatus.READY).aggregate(
        avg=Avg("duration_ms"), n=Count("id")
    )
    avg = figures["avg"]
    return Reading(value=None if avg is None else float(avg) / 1000.0, sample=figures["n"])


@figure_invariant(
    name="runs.stuck_runs",
    app=APP,
    description="Active runs submitted more than 5 minutes ago",
    warn_above=5,
    critical_above=20,
)
def stuck_runs() -> float:
    return float(
        MatchRun.objects.filter(status__in=ACTIVE_RUN_STATUSES, created_at__lt=Now() - timedelta(minutes=5)).count()
    )


@rows_invariant(
    name="runs.runs_finishing",
    app=APP,
    description="When runs were submitted in the last hour (over a minute ago), some run finished in the last hour",
)
def no_run_finished_last_hour() -> list[str]:
    waiting = MatchRun.objects.filter(
        created_at__gte=Now() - timedelta(hours=1), created_at__lt=Now() - timedelta(minutes=1)
    ).count()
    if waiting and not MatchRun.objects.filter(_last_hour(), status__in=FINISHED).exists():
        return [f"{waiting} run(s) submitted in the last hour, none finished"]
    return []


@figure_invariant(
    name="runs.queue_depth",
    app=APP,
    description="Runs waiting to be claimed",
    warn_above=500,
    critical_above=5000,
)
def queue_depth() -> float:
    return float(MatchRun.objects.filter(status=MatchRunStatus.QUEUED).count())
