from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class QueueStatus(models.TextChoices):
    """The states every lease queue shares; a domain may rename done/dead (runs: ready/error)."""

    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    DEAD = "dead", "Dead"


class LeaseQueueModel(models.Model):
    """A row that is a unit of background work (DESIGN.md, "The lease queue").

    Concrete queues subclass this, add their own fields and states, and register an
    ``ops.queue.LeaseQueue`` for themselves. ``status`` choices are the subclass's.
    """

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=20, default=QueueStatus.QUEUED)
    priority = models.SmallIntegerField(default=100)
    attempts = models.PositiveIntegerField(default=0, help_text="Times the row was claimed.")
    rescues = models.PositiveIntegerField(default=0, help_text="Times a crashed worker's lease was released.")
    max_attempts = models.PositiveIntegerField(default=3)
    available_at = models.DateTimeField(db_default=Now())
    lease_token = models.UUIDField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        abstract = True


class QueueHistory(models.Model):
    """One row per transition of any lease-queue row, written in the transition's transaction."""

    queue = models.CharField(max_length=64)
    item_id = models.BigIntegerField()
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20)
    event = models.CharField(max_length=20)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_token = models.UUIDField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        verbose_name_plural = "queue history"
        indexes = [
            models.Index(fields=["queue", "item_id", "id"], name="ops_history_item"),
            models.Index(fields=["created_at"], name="ops_history_created"),
        ]

    def __str__(self) -> str:
        return f"{self.queue}#{self.item_id} {self.from_status}->{self.to_status} ({self.event})"


class DeadLetter(models.Model):
    """A row that ran out of attempts or rescues. Requeueing it puts the row back to queued."""

    queue = models.CharField(max_length=64)
    item_id = models.BigIntegerField()
    reason = models.CharField(max_length=20)  # "attempts" | "rescues"
    attempts = models.PositiveIntegerField(default=0)
    rescues = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["queue", "item_id"], name="ops_deadletter_item"),
            models.Index(
                fields=["created_at"], name="ops_deadletter_open", condition=models.Q(requeued_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue}#{self.item_id} ({self.reason})"


class WorkerHeartbeat(models.Model):
    worker_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    queues = models.JSONField(default=list, blank=True)
    processed = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    leases_lost = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField(db_default=Now(), editable=False)
    last_seen = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [models.Index(fields=["last_seen"], name="ops_heartbeat_seen")]

    def __str__(self) -> str:
        return self.worker_id


class InvariantState(models.TextChoices):
    OK = "ok", "OK"
    # A rate, average or percentile over fewer runs than its minimum sample: one bad input
    # among four runs is no alert. Counts as ok for the platform's status.
    INSUFFICIENT_DATA = "insufficient_data", "Not enough data"
    WARN = "warn", "Warning"
    CRITICAL = "critical", "Critical"
    ERROR = "error", "Check failed to run"


class InvariantResult(models.Model):
    name = models.CharField(max_length=100)
    app = models.CharField(max_length=50)
    state = models.CharField(max_length=20, choices=InvariantState.choices)
    value = models.FloatField(null=True, blank=True)
    sample = models.PositiveIntegerField(null=True, blank=True, help_text="How many items a figure was computed from.")
    detail = models.TextField(blank=True, default="")
    checked_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [models.Index(fields=["name", "-checked_at"], name="ops_invresult_latest")]

    def __str__(self) -> str:
        return f"{self.name}: {self.state}"


# Request latency histogram: fixed upper bounds in milliseconds, each bucket counting the
# requests in (previous bound, bound]; the last column counts everything above 5 s.
LATENCY_BOUNDS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
LATENCY_FIELDS: tuple[str, ...] = (*(f"le_{bound}" for bound in LATENCY_BOUNDS_MS), "le_inf")


class RouteMinute(models.Model):
    """Requests to one route in one minute, aggregated (never a row per request).

    Untagged totals have ``flag=""`` and ``cohort=""``; a request in a running rollout also
    adds to one row per (flag, cohort) it is in, so a route's rows for a minute are its total
    plus one per cohort. ``route`` is the resolved URL name ("unmatched" for no match), never
    the raw path: a client must not be able to create rows at will.
    """

    id = models.BigAutoField(primary_key=True)
    minute = models.DateTimeField(help_text="Start of the UTC minute.")
    route = models.CharField(max_length=100)
    flag = models.CharField(max_length=100, blank=True, default="")
    cohort = models.CharField(max_length=20, blank=True, default="")
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0, help_text="Responses with a 5xx status.")
    duration_ms_sum = models.FloatField(default=0.0)
    le_5 = models.PositiveBigIntegerField(default=0)
    le_10 = models.PositiveBigIntegerField(default=0)
    le_25 = models.PositiveBigIntegerField(default=0)
    le_50 = models.PositiveBigIntegerField(default=0)
    le_100 = models.PositiveBigIntegerField(default=0)
    le_250 = models.PositiveBigIntegerField(default=0)
    le_500 = models.PositiveBigIntegerField(default=0)
    le_1000 = models.PositiveBigIntegerField(default=0)
    le_2500 = models.PositiveBigIntegerField(default=0)
    le_5000 = models.PositiveBigIntegerField(default=0)
    le_inf = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            # The flush's upsert target; minute first, so a window or the prune is a range scan.
            models.UniqueConstraint(fields=["minute", "route", "flag", "cohort"], name="ops_routeminute_key"),
        ]
        indexes = [models.Index(fields=["flag", "minute"], name="ops_routeminute_flag")]

    def __str__(self) -> str:
        tag = f" {self.flag}={self.cohort}" if self.flag else ""
        return f"{self.route} {self.minute:%Y-%m-%d %H:%M}{tag}: {self.count}"

    def buckets(self) -> list[int]:
        return [int(getattr(self, name)) for name in LATENCY_FIELDS]
