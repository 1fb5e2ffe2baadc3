from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Now

from flags.config.selectors import config_get
from matchplatform.exceptions import Conflict, ErrorCode, LeaseLost
from ops.queue import Lease
from ops.services import queue_item_enqueue, queue_items_archive
from ops.worker import worker_id
from runs.canonical import url_canonicalize
from runs.configs import RUNS_FETCH
from runs.engine import ScoredInvestor, StartupProfile, corpus_cache, matches_rank
from runs.fetch import FetchError, PageProfile, page_fetch
from runs.models import (
    ACTIVE_RUN_STATUSES,
    RUN_FAILED_ON_OUR_SIDE,
    Investor,
    InvestorCorpusVersion,
    MatchRun,
    MatchRunArchive,
    MatchRunStatus,
    Startup,
    StartupInvestorMatch,
)
from runs.queue import runs_queue
from runs.vocab import country_mask, sector_mask, stage_mask

logger = logging.getLogger(__name__)


# -- investors ------------------------------------------------------------------------
def corpus_version_bump() -> None:
    """Tell every worker its in-memory corpus is stale. Call inside the writing transaction."""
    # The row is created by a migration, so this is one atomic increment; the fallback is
    # for a database emptied since (a test flush).
    if not InvestorCorpusVersion.objects.filter(pk=1).update(version=F("version") + 1, updated_at=Now()):
        InvestorCorpusVersion.objects.get_or_create(pk=1, defaults={"version": 1})


def _investor_build(data: dict[str, Any]) -> Investor:
    sectors, stages, countries = (
        list(data.get("sectors", [])),
        list(data.get("stages", [])),
        list(data.get("countries", [])),
    )
    return Investor(
        name=data["name"],
        sectors=sectors,
        stages=stages,
        countries=countries,
        check_min=int(data["check_min"]),
        check_max=int(data["check_max"]),
        activity=float(data.get("activity", 0.5)),
        sector_mask=sector_mask(sectors),
        stage_mask=stage_mask(stages),
        country_mask=country_mask(countries),
    )


def investors_bulk_create(*, rows: Iterable[dict[str, Any]], batch_size: int = 5000) -> int:
    with transaction.atomic():
        created = Investor.objects.bulk_create([_investor_build(row) for row in rows], batch_size=batch_size)
        corpus_version_bump()
    return len(created)


def investor_save(*, investor: Investor) -> Investor:
    """Save an investor edited elsewhere (the admin), keeping its masks and the corpus
    version in step."""
    investor.sector_mask = sector_mask(investor.sectors)
    investor.stage_mask = stage_mask(investor.stages)
    investor.country_mask = country_mask(investor.countries)
    with transaction.atomic():
        investor.save()
        corpus_version_bump()
    return investor


def investor_create(**data: Any) -> Investor:
    with transaction.atomic():
        investor = _investor_build(data)
        investor.save()
        corpus_version_bump()
    return investor


# -- submission -----------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    run: MatchRun
    created: bool


def match_run_submit(*, url: object) -> Submission:
    """Start a run for this URL, or return the active run its canonical URL already has.

    The partial unique constraint ``runs_one_active_run_per_url`` is what guarantees one
    active run; this function only turns the loser of a race into a reader."""
    canonical = url_canonicalize(url=url)
    assert isinstance(url, str)
    for _ in range(5):
        existing = MatchRun.objects.filter(canonical_url=canonical, status__in=ACTIVE_RUN_STATUSES).first()
        if existing is not None:
            return Submission(run=existing, created=False)
        try:
            # Durable: the wake-up goes out on commit, so this must be the outermost transaction.
            with transaction.atomic(durable=True):
                run = MatchRun.objects.create(
                    canonical_url=canonical,
                    submitted_url=url.strip()[:2048],
                    startup=Startup.objects.filter(canonical_url=canonical).first(),
                    status=MatchRunStatus.QUEUED,
                    max_attempts=settings.RUNS_MAX_ATTEMPTS,
                )
                queue_item_enqueue(queue=runs_queue, item_id=run.pk, event="submit")
            run.refresh_from_db()
            return Submission(run=run, created=True)
        except IntegrityError:
            # Another request created the active run between our read and our insert.
            continue
    raise Conflict("The run for this URL is changing state; try again.", code=ErrorCode.BUSY)


# -- processing -----------------------------------------------------------------------
def startup_upsert_from_page(*, canonical_url: str, page: PageProfile) -> Startup:
    startup, _ = Startup.objects.update_or_create(
        canonical_url=canonical_url,
        defaults={
            "name": page.name[:200] or canonical_url[:200],
            "description": page.description,
            "sectors": page.sectors,
            "source": Startup.Source.FETCHED,
            "updated_at": Now(),
        },
    )
    return startup


def _startup_resolve(*, run: MatchRun, lease: Lease) -> Startup:
    startup = run.startup or Startup.objects.filter(canonical_url=run.canonical_url).first()
    if startup is not None:
        return startup
    fetch = config_get(RUNS_FETCH)
    if not fetch.unknown_sites:
        raise FetchPaused(seconds=fetch.paused_retry_seconds)
    # Fetching happens outside any transaction: the lease is a row state, not a lock.
    page = page_fetch(url=run.canonical_url)
    runs_queue.extend(lease=lease, ttl=settings.RUNS_LEASE_TTL_SECONDS)
    return startup_upsert_from_page(canonical_url=run.canonical_url, page=page)


class FetchPaused(Exception):
    """Fetching unknown sites is paused (runs.fetch): the run goes back to wait."""

    def __init__(self, *, seconds: float) -> None:
        super().__init__(f"fetching paused for {seconds} s")
        self.seconds = seconds


_FAILED_ON_OUR_SIDE = {"error_code": ErrorCode.SERVER_ERROR, "error_message": RUN_FAILED_ON_OUR_SIDE}


@dataclass(frozen=True)
class ScoredRun:
    lease: Lease
    startup: Startup
    ranked: list[ScoredInvestor]


def match_run_score(*, lease: Lease) -> ScoredRun | None:
    """Resolve the run's startup (fetching its page if unknown) and rank the corpus for it.
    A failure is recorded on the run (retry or error) and gives None."""
    run = MatchRun.objects.select_related("startup").get(pk=lease.id)
    MatchRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=Now())
    try:
        startup = _startup_resolve(run=run, lease=lease)
        profile = StartupProfile(
            sector_mask=sector_mask(startup.sectors),
            stage=startup.stage,
            raise_amount=startup.raise_amount,
            country=startup.country,
        )
        ranked = matches_rank(corpus=corpus_cache.get(), startup=profile, k=settings.RUNS_TOP_K)
    except FetchPaused as paused:
        # Safe mode (or an operator) paused fetching unknown sites: the run waits, unfailed.
        runs_queue.defer(lease=lease, seconds=paused.seconds, reason="fetching unknown sites is paused (runs.fetch)")
        return None
    except FetchError as exc:
        runs_queue.fail(
            lease=lease,
            error=exc.message,
            retryable=exc.retryable,
            fields={"error_code": exc.code, "error_message": exc.public},
        )
        return None
    except (LeaseLost, SoftTimeLimitExceeded):
        raise
    except Exception as exc:
        logger.exception("match run %s failed", run.run_id)
        runs_queue.fail(lease=lease, error=f"{type(exc).__name__}: {exc}", fields=_FAILED_ON_OUR_SIDE)
        return None
    return ScoredRun(lease=lease, startup=startup, ranked=ranked)


def match_runs_store(*, scored: list[ScoredRun]) -> list[int]:
    """Ack scored runs and store their matches in one transaction (one durable commit for
    the batch). Runs whose lease was lost meanwhile are left out, their matches unwritten."""
    by_id = {item.lease.id: item for item in scored}

    def store(held: list[Lease]) -> None:
        StartupInvestorMatch.objects.bulk_create(
            [
                StartupInvestorMatch(
                    run_id=lease.id,
                    startup_id=by_id[lease.id].startup.pk,
                    investor_id=m.investor_id,
                    score=m.score,
                    rank=m.rank,
                    reasons=m.reasons,
                )
                for lease in held
                for m in by_id[lease.id].ranked
            ]
        )

    return runs_queue.ack_many(
        leases=[item.lease for item in scored],
        fields={
            item.lease.id: {
                "match_count": len(item.ranked),
                "startup_id": item.startup.pk,
                "last_error": "",
                "error_code": "",
                "error_message": "",
            }
            for item in scored
        },
        on_ack=store,
    )


def match_run_process(*, lease: Lease) -> str:
    """Score one claimed run and store its matches; returns the run's new status."""
    scored = match_run_score(lease=lease)
    if scored is not None and not match_runs_store(scored=[scored]):
        raise LeaseLost(f"run #{lease.id}: the lease was lost before its result was stored", code=ErrorCode.LEASE_LOST)
    return MatchRun.objects.filter(pk=lease.id).values_list("status", flat=True).get()


def match_runs_process_batch(*, limit: int | None = None, owner: str | None = None) -> int:
    """Claim a batch of runs, score each, then store them all in one transaction; returns
    how many were claimed."""
    ttl = settings.RUNS_LEASE_TTL_SECONDS
    leases = runs_queue.claim(owner=owner or worker_id(), limit=limit or settings.RUNS_CLAIM_BATCH, ttl=ttl)
    held = list(leases)
    renewed_at = time.monotonic()
    scored: list[ScoredRun] = []
    try:
        for lease in leases:
            if lease not in held:
                continue
            if time.monotonic() - renewed_at > ttl / 3:
                # A slow fetch can take most of a TTL: renew every lease the batch still
                # holds, the scored ones waiting to be stored as well as those waiting
                # their turn, so none expires under us.
                held = _leases_renew(leases=held, ttl=ttl)
                scored = [item for item in scored if item.lease in held]
                renewed_at = time.monotonic()
                if lease not in held:
                    continue
            try:
                item = match_run_score(lease=lease)
            except LeaseLost:
                logger.warning("run #%s: lease lost, result dropped", lease.id)
                held.remove(lease)
                continue
            if item is not None:
                scored.append(item)
    finally:
        # Even when the task's soft time limit interrupts the batch, what is scored is kept.
        if scored:
            _scored_store(scored=scored)
    return len(leases)


def _leases_renew(*, leases: list[Lease], ttl: float) -> list[Lease]:
    kept = []
    for lease in leases:
        try:
            runs_queue.extend(lease=lease, ttl=ttl)
        except LeaseLost:
            logger.warning("run #%s: lease lost while waiting in its batch", lease.id)
            continue
        kept.append(lease)
    return kept


def _scored_store(*, scored: list[ScoredRun]) -> None:
    """Store a batch in one transaction; if that fails, store run by run so that one bad
    run fails alone instead of taking its whole batch down with it."""
    try:
        match_runs_store(scored=scored)
        return
    except Exception:
        if len(scored) == 1:
            item = scored[0]
            logger.exception("storing run #%s failed", item.lease.id)
            with contextlib.suppress(LeaseLost):
                runs_queue.fail(lease=item.lease, error="could not store the run's matches", fields=_FAILED_ON_OUR_SIDE)
            return
        logger.warning("storing a batch of %s runs failed; storing them one by one", len(scored), exc_info=True)
    for item in scored:
        _scored_store(scored=[item])


# -- retention ------------------------------------------------------------------------
def match_runs_archivable(*, older_than_days: int | None = None) -> QuerySet[MatchRun]:
    days = settings.RUNS_ARCHIVE_AFTER_DAYS if older_than_days is None else older_than_days
    return MatchRun.objects.filter(
        status__in=[MatchRunStatus.READY, MatchRunStatus.ERROR],
        created_at__lt=Now() - timedelta(days=days),
    )


def match_runs_archive(
    *, older_than_days: int | None = None, batch_size: int = 500, progress: Callable[[int], object] | None = None
) -> int:
    """Move finished runs older than the cut-off, with their matches and history, into
    ``MatchRunArchive``. Each batch is one transaction: a run is deleted only in the
    transaction that wrote its archive row."""
    moved = 0
    while True:
        with transaction.atomic():
            runs = list(
                match_runs_archivable(older_than_days=older_than_days)
                .select_for_update(skip_locked=True)
                .order_by("id")[:batch_size]
            )
            if not runs:
                return moved
            ids = [run.pk for run in runs]
            matches: dict[int, list[dict[str, Any]]] = {}
            for run_pk, investor_id, score, rank, reasons in (
                StartupInvestorMatch.objects.filter(run_id__in=ids)
                .order_by("run_id", "rank")
                .values_list("run_id", "investor_id", "score", "rank", "reasons")
            ):
                matches.setdefault(run_pk, []).append(
                    {"investor_id": investor_id, "score": score, "rank": rank, "reasons": reasons}
                )
            # The history and dead letters go with the runs (ops deletes them, in this transaction).
            queue_rows = queue_items_archive(queue=runs_queue, item_ids=ids)
            MatchRunArchive.objects.bulk_create(
                [
                    MatchRunArchive(
                        run_id=run.run_id,
                        canonical_url=run.canonical_url,
                        status=run.status,
                        created_at=run.created_at,
                        finished_at=run.finished_at,
                        payload={
                            "submitted_url": run.submitted_url,
                            "startup_id": run.startup_id,
                            "match_count": run.match_count,
                            "attempts": run.attempts,
                            "rescues": run.rescues,
                            "last_error": run.last_error,
                            "error_code": run.error_code,
                            "error_message": run.error_message,
                            "duration_ms": run.duration_ms,
                            "started_at": run.started_at.isoformat() if run.started_at else None,
                            "matches": matches.get(run.pk, []),
                            "history": queue_rows.history.get(run.pk, []),
                            "dead_letters": queue_rows.dead_letters.get(run.pk, []),
                        },
                    )
                    for run in runs
                ]
            )
            StartupInvestorMatch.objects.filter(run_id__in=ids).delete()
            MatchRun.objects.filter(pk__in=ids).delete()
            moved += len(ids)
        if progress is not None:
            progress(len(ids))
