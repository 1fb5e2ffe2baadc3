"""Discovery: the interest catalog, marketplace categories and candidates, what members say
they are interested in and what they do, the gaps discovery finds, and every ranking decision
with its propensity (so a new policy can be judged offline on what was served)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from ops.models import LeaseQueueModel, QueueStatus


class Interest(models.Model):
    """An interest members can pick (the catalog)."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    """A marketplace category: candidates live in one."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    interests: models.ManyToManyField[Interest, InterestCategory] = models.ManyToManyField(
        Interest, through="InterestCategory", related_name="categories"
    )

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class InterestCategory(models.Model):
    """The interest -> category map: an interest is served by candidates of these categories."""

    interest = models.ForeignKey(Interest, on_delete=models.CASCADE)
    category = models.ForeignKey(Category, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["interest", "category"], name="discovery_interest_category")]
        verbose_name = "interest to category"
        verbose_name_plural = "interests to categories"

    def __str__(self) -> str:
        return f"{self.interest_id} -> {self.category_id}"


class Candidate(models.Model):
    """Something a member can be shown: a listing of the marketplace."""

    class Kind(models.TextChoices):
        LISTING = "listing", "Listing"
        SERVICE = "service", "Service"
        EVENT = "event", "Event"
        COMMUNITY = "community", "Community"

    name = models.CharField(max_length=200)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="candidates")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.LISTING)
    popularity = models.FloatField(default=0.0, help_text="0..1: how much members engage with it.")
    published_at = models.DateTimeField(db_default=Now(), help_text="Freshness: newer ranks higher.")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(popularity__gte=0) & Q(popularity__lte=1), name="discovery_candidate_popularity_0_1"
            )
        ]
        indexes = [models.Index(fields=["category", "-popularity"], name="discovery_candidate_rank")]

    def __str__(self) -> str:
        return self.name


class CatalogStamp(models.Model):
    """One row: the version of the candidate catalog each serving process holds in memory
    (discovery.serving). Database triggers (migration 0007) set a new random version on every
    write to candidates or categories, whoever makes it (the admin, a worker, a bulk load in
    raw SQL); a rolled-back write leaves the old one. A process reads it at most once every
    ``DISCOVERY_CATALOG_CHECK_SECONDS`` and reloads the catalog only when it changed."""

    version = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "catalog stamp"

    def __str__(self) -> str:
        return f"catalog stamp {self.version}"


class UserInterest(models.Model):
    """A member's interest, with how strongly (0..1); one per member and interest."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="discovery_interests")
    interest = models.ForeignKey(Interest, on_delete=models.CASCADE, related_name="members")
    affinity = models.FloatField(default=0.5)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "interest"], name="discovery_user_interest_once"),
            models.CheckConstraint(
                condition=Q(affinity__gte=0) & Q(affinity__lte=1), name="discovery_user_interest_affinity_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.interest_id} ({self.affinity:g})"


class LearningEvent(models.Model):
    """One ranking decision, logged whole so it can be judged offline: the candidate set, the
    action distribution the policy drew from, the item it led with and that item's
    propensity, whether it explored, the seed it drew with (the decision replays), and the
    reward when one arrives (joined from a signal within the attribution window, never
    guessed)."""

    decision_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: (user, -decided_at) below serves every read by member, and each
    # suggestion pays one index less on its insert.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="learning_events", db_index=False
    )
    surface = models.CharField(max_length=30, default="suggestions")
    policy_version = models.CharField(max_length=50)
    policy_hash = models.CharField(max_length=64, help_text="A hash of the policy's config at the decision.")
    candidate_ids = models.JSONField(help_text="The candidate set, in the order it was scored.")
    distribution = models.JSONField(
        help_text='Each candidate\'s probability of leading the slate: {"<top id>": p, "*": every other\'s p} '
        "(discovery.ranker.distribution_log), or one entry per candidate."
    )
    slate = models.JSONField(help_text="The candidates served, in order.")
    chosen = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    p_exp = models.FloatField(help_text="The chosen item's propensity; 0 when the decision was not randomized.")
    explored = models.BooleanField(default=False)
    randomized = models.BooleanField(default=True, help_text="False in safe mode or at epsilon 0.")
    seed = models.BigIntegerField()
    score = models.FloatField()
    context = models.JSONField(default=dict, blank=True)
    decided_at = models.DateTimeField(db_default=Now())
    reward = models.FloatField(null=True, blank=True)
    rewarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(p_exp__gte=0) & Q(p_exp__lte=1), name="discovery_event_p_exp_0_1"),
        ]
        indexes = [
            models.Index(fields=["policy_version", "decided_at"], name="discovery_event_policy"),
            models.Index(fields=["user", "-decided_at"], name="discovery_event_user"),
            # Policy health over every version, the exploration invariant (every minute) and
            # the retention GC read by time alone.
            models.Index(fields=["decided_at"], name="discovery_event_decided"),
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.policy_version}"


class IntentSignal(models.Model):
    """What a member did with a candidate; a click or a save may reward a decision."""

    class Kind(models.TextChoices):
        VIEW = "view", "View"
        CLICK = "click", "Click"
        SAVE = "save", "Save"
        DISMISS = "dismiss", "Dismiss"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="intent_signals")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="signals")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    decision = models.ForeignKey(
        LearningEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="signals"
    )
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="discovery_signal_user")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.candidate_id}"


class Gap(models.Model):
    """An interest whose categories hold fewer candidates than discovery needs."""

    interest = models.OneToOneField(Interest, on_delete=models.CASCADE, related_name="gap")
    candidates_found = models.PositiveIntegerField()
    candidates_needed = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.interest_id}: {self.candidates_found}/{self.candidates_needed}"


class DiscoveryTopic(models.TextChoices):
    USER_SIGNUP = "discovery.user-signup", "A member signed up"
    INTERESTS_CHANGED = "discovery.interests-changed", "A member's interests changed"
    REFRESH = "discovery.refresh", "A scheduled refresh"


ACTIVE_JOB_STATUSES = (QueueStatus.QUEUED, QueueStatus.PROCESSING)


class DiscoveryJob(LeaseQueueModel):
    """Find a member's candidates for one interest (and record a gap when there are too
    few): a row of the discovery lease queue, one active per member and interest."""

    status = models.CharField(max_length=20, choices=QueueStatus.choices, default=QueueStatus.QUEUED)
    topic = models.CharField(max_length=40, choices=DiscoveryTopic.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="discovery_jobs")
    interest = models.ForeignKey(Interest, on_delete=models.CASCADE, related_name="jobs")
    candidates_found = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One job in flight per member and interest: enqueueing again while one waits is a no-op.
            models.UniqueConstraint(
                fields=["user", "interest"],
                condition=Q(status__in=[s.value for s in ACTIVE_JOB_STATUSES]),
                name="discovery_job_one_active",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in QueueStatus]), name="discovery_job_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["priority", "id"], name="discovery_job_claim", condition=Q(status="queued")),
            models.Index(fields=["lease_expires_at"], name="discovery_job_leases", condition=Q(status="processing")),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.user_id}/{self.interest_id} ({self.status})"


class DiscoveryEvent(LeaseQueueModel):
    """Something that happened to a member that discovery reacts to (a sign-up, a change of
    interests): a row of the events lease queue. ``topic`` names the handler registered in
    code (discovery.events); ``payload`` is what the handler needs, JSON only.

    Topics are not choices on purpose: a new topic is a handler registered in code, not a
    migration. Its Meta also declares the permission a service user needs to drive the
    queue worker over HTTP (``discovery.run_queue_worker``)."""

    status = models.CharField(max_length=20, choices=QueueStatus.choices, default=QueueStatus.QUEUED)
    topic = models.CharField(max_length=60)
    payload = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="discovery_events"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in QueueStatus]), name="discovery_eventq_status_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["topic", "priority", "id"], name="discovery_eventq_claim", condition=Q(status="queued")
            ),
            # discovery.events claims every topic: the queue's order without a topic.
            models.Index(fields=["priority", "id"], name="discovery_eventq_claim_all", condition=Q(status="queued")),
            models.Index(fields=["lease_expires_at"], name="discovery_eventq_leases", condition=Q(status="processing")),
        ]
        permissions = [("run_queue_worker", "Can run the queue worker over HTTP (a service token)")]

    def __str__(self) -> str:
        return f"{self.topic} #{self.pk} ({self.status})"
