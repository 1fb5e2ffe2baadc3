from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from matchplatform.exceptions import ErrorCode
from ops.models import LeaseQueueModel
from runs.vocab import STAGES

STAGE_CHOICES = [(stage, stage) for stage in STAGES]


class Startup(models.Model):
    class Source(models.TextChoices):
        SEED = "seed", "Seeded"
        FETCHED = "fetched", "Fetched from its site"

    canonical_url = models.CharField(max_length=2048, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    sectors = models.JSONField(default=list, blank=True)
    stage = models.CharField(max_length=20, choices=STAGE_CHOICES, blank=True, default="")
    raise_amount = models.BigIntegerField(null=True, blank=True, help_text="USD")
    country = models.CharField(max_length=2, blank=True, default="")
    quality_score = models.FloatField(default=0.5)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SEED)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(quality_score__gte=0) & Q(quality_score__lte=1), name="runs_startup_quality_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Investor(models.Model):
    name = models.CharField(max_length=200)
    sectors = models.JSONField(default=list, blank=True)
    stages = models.JSONField(default=list, blank=True)
    countries = models.JSONField(default=list, blank=True, help_text="Empty: invests anywhere.")
    check_min = models.BigIntegerField(help_text="USD")
    check_max = models.BigIntegerField(help_text="USD")
    activity = models.FloatField(default=0.5, help_text="0..1, how actively the investor writes checks")
    # Bitmasks over runs.vocab, kept in step with the lists by the investor services; the
    # engine scores on these.
    sector_mask = models.BigIntegerField(default=0)
    stage_mask = models.BigIntegerField(default=0)
    country_mask = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(check_min__lte=models.F("check_max")), name="runs_investor_check_range"),
            models.CheckConstraint(
                condition=Q(activity__gte=0) & Q(activity__lte=1), name="runs_investor_activity_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class InvestorCorpusVersion(models.Model):
    """A single row whose number changes whenever the investor corpus does; workers reload
    their in-memory corpus only when it moves."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    def __str__(self) -> str:
        return f"corpus v{self.version}"


class MatchRunStatus(models.TextChoices):
    CREATED = "created", "Created"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"


ACTIVE_RUN_STATUSES = (MatchRunStatus.CREATED, MatchRunStatus.QUEUED, MatchRunStatus.PROCESSING)

# A run that failed with one of these was refused because of what was submitted (a host
# that does not resolve or points inside, a page that is gone, not HTML or too large): it is
# never retried and stays out of the platform's error rate, counted apart as a refused input.
# Timeouts, 5xx answers and our own failures are platform errors (unavailable, server_error).
REFUSED_INPUT_CODES = frozenset(
    {
        ErrorCode.INVALID_URL,
        ErrorCode.INVALID_SCHEME,
        ErrorCode.MISSING_HOST,
        ErrorCode.CREDENTIALS_NOT_ALLOWED,
        ErrorCode.FORBIDDEN_HOST,
        ErrorCode.HOST_UNRESOLVABLE,
        ErrorCode.TOO_LONG,
        ErrorCode.FETCH_FAILED,
    }
)
# What a caller reads when a run failed on our side; the operators' detail stays in
# last_error and the queue history (the staff debug view).
RUN_FAILED_ON_OUR_SIDE = "The run failed on our side, not because of the URL."


class MatchRun(LeaseQueueModel):
    """One request to match a startup; also a row of the runs lease queue."""

    run_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=20, choices=MatchRunStatus.choices, default=MatchRunStatus.QUEUED)
    canonical_url = models.CharField(max_length=2048)
    submitted_url = models.CharField(max_length=2048)
    startup = models.ForeignKey(Startup, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    match_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True, help_text="Submit to finish, by the DB clock")
    # The last failure, for callers: its ErrorCode and what is wrong, in words safe to show
    # anyone (last_error keeps the operators' detail).
    error_code = models.CharField(max_length=40, blank=True, default="", help_text="ErrorCode of the last failure")
    error_message = models.TextField(blank=True, default="", help_text="The last failure, in words for users")

    class Meta:
        constraints = [
            # The runbook's "no URL has two active runs", enforced by the database itself.
            models.UniqueConstraint(
                fields=["canonical_url"],
                condition=Q(status__in=[s.value for s in ACTIVE_RUN_STATUSES]),
                name="runs_one_active_run_per_url",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in MatchRunStatus]), name="runs_matchrun_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=MatchRunStatus.PROCESSING) | Q(lease_token__isnull=False),
                name="runs_matchrun_processing_has_lease",
            ),
        ]
        indexes = [
            models.Index(fields=["priority", "id"], name="runs_matchrun_claim", condition=Q(status="queued")),
            models.Index(fields=["lease_expires_at"], name="runs_matchrun_leases", condition=Q(status="processing")),
            models.Index(fields=["created_at"], name="runs_matchrun_created"),
            models.Index(fields=["status"], name="runs_matchrun_status"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.canonical_url} ({self.status})"


class StartupInvestorMatch(models.Model):
    run = models.ForeignKey(MatchRun, on_delete=models.CASCADE, related_name="matches")
    startup = models.ForeignKey(Startup, on_delete=models.CASCADE, related_name="matches")
    investor = models.ForeignKey(Investor, on_delete=models.CASCADE, related_name="matches")
    score = models.FloatField()
    rank = models.PositiveSmallIntegerField()
    reasons = models.JSONField(default=list)

    class Meta:
        constraints = [
            # A run's result is stored once: a second write of the same run fails loudly.
            models.UniqueConstraint(fields=["run", "rank"], name="runs_match_unique_rank"),
            models.UniqueConstraint(fields=["run", "investor"], name="runs_match_unique_investor"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.investor_id} ({self.score:.3f})"


class MatchRunArchive(models.Model):
    """A finished run moved out of the hot table, with its matches and history."""

    run_id = models.UUIDField(unique=True)
    canonical_url = models.CharField(max_length=2048)
    status = models.CharField(max_length=20)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField()
    archived_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [models.Index(fields=["canonical_url"], name="runs_archive_url")]

    def __str__(self) -> str:
        return f"{self.run_id} (archived)"
