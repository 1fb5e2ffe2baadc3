from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now


def pair_hash_of(a: int, b: int) -> str:
    """The identity of an unordered pair of members: the same for (a, b) and (b, a)."""
    low, high = sorted((int(a), int(b)))
    return hashlib.sha256(f"{low}:{high}".encode()).hexdigest()[:32]


class Profile(models.Model):
    class Privacy(models.TextChoices):
        PUBLIC = "public", "Public"
        CONNECTIONS = "connections", "Connections only"
        PRIVATE = "private", "Private"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(max_length=80)
    bio = models.TextField(blank=True, default="", max_length=2000)
    interests = models.JSONField(default=list, blank=True)
    interest_mask = models.BigIntegerField(default=0)
    privacy = models.CharField(max_length=12, choices=Privacy.choices, default=Privacy.PUBLIC)
    # Set only by a verified Sign-In with Ethereum, never from a request field.
    wallet_address = models.CharField(max_length=42, null=True, blank=True, unique=True)
    wallet_verified_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True, help_text="Takes part in proposals and voting.")
    # Voting proposals assigned to this member and not yet voted on; kept by the services so
    # that "least-loaded voters first" is an index scan, not a count over all assignments.
    open_assignments = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["open_assignments", "id"], name="proposals_voter_load", condition=Q(is_active=True)),
        ]

    def __str__(self) -> str:
        return self.display_name


class WalletNonce(models.Model):
    """A server-issued, single-use, expiring nonce for Sign-In with Ethereum."""

    nonce = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.nonce


class ProposalStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    VOTING = "voting", "Voting"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


OPEN_PAIR_STATUSES = (ProposalStatus.QUEUED, ProposalStatus.VOTING, ProposalStatus.APPROVED)


class Proposal(models.Model):
    """A proposed pair. Queued rows are the generation queue; voting rows are open for votes."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    member_a = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    member_b = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    pair_hash = models.CharField(max_length=32)
    compatibility = models.FloatField()
    status = models.CharField(max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.QUEUED)
    voters_required = models.PositiveSmallIntegerField(default=10)
    approve_threshold = models.PositiveSmallIntegerField(default=5)
    yes_count = models.PositiveIntegerField(default=0)
    no_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    voting_started_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A pair that is queued, voting or approved is never queued or proposed again.
            models.UniqueConstraint(
                fields=["pair_hash"],
                condition=Q(status__in=[s.value for s in OPEN_PAIR_STATUSES]),
                name="proposals_one_open_proposal_per_pair",
            ),
            models.CheckConstraint(condition=Q(member_a__lt=F("member_b")), name="proposals_pair_ordered"),
            models.CheckConstraint(
                condition=~Q(status=ProposalStatus.VOTING) | Q(deadline__isnull=False),
                name="proposals_voting_has_deadline",
            ),
        ]
        indexes = [
            models.Index(fields=["-compatibility", "id"], name="proposals_queue", condition=Q(status="queued")),
            models.Index(fields=["deadline"], name="proposals_voting_deadline", condition=Q(status="voting")),
            models.Index(fields=["pair_hash", "finalized_at"], name="proposals_pair_history"),
        ]

    def __str__(self) -> str:
        return f"{self.member_a_id}+{self.member_b_id} ({self.status})"


class QueuedProposal(Proposal):
    """The generation queue, as operators see it: the queued proposals."""

    class Meta:
        proxy = True
        verbose_name = "generation queue item"
        verbose_name_plural = "generation queue"


class ProposalVoter(models.Model):
    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="voters")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    # The pair, copied here so the database itself can refuse a pair member as voter.
    member_a_id_copy = models.BigIntegerField()
    member_b_id_copy = models.BigIntegerField()
    assigned_at = models.DateTimeField(db_default=Now(), editable=False)
    voted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["proposal", "voter"], name="proposals_voter_once"),
            models.CheckConstraint(
                condition=~Q(voter=F("member_a_id_copy")) & ~Q(voter=F("member_b_id_copy")),
                name="proposals_voter_not_in_pair",
            ),
        ]
        indexes = [models.Index(fields=["voter", "voted"], name="proposals_voter_open")]

    def __str__(self) -> str:
        return f"{self.voter_id} on {self.proposal_id}"


class Vote(models.Model):
    class Choice(models.TextChoices):
        YES = "yes", "Yes"
        NO = "no", "No"

    # One vote per assignment: only an assigned voter can have one, and only once.
    assignment = models.OneToOneField(ProposalVoter, on_delete=models.CASCADE, related_name="vote")
    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    choice = models.CharField(max_length=3, choices=Choice.choices)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["proposal", "voter"], name="proposals_one_vote_per_voter")]

    def __str__(self) -> str:
        return f"{self.voter_id}: {self.choice}"


class Event(models.Model):
    """A gathering where members also get matched (a match's ``source`` is then ``event``)."""

    name = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gte=F("starts_at")), name="proposals_event_dates"),
        ]
        ordering = ("-starts_at", "id")

    def __str__(self) -> str:
        return self.name


class MatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class MatchSource(models.TextChoices):
    PROPOSAL = "proposal", "Community proposal"
    EVENT = "event", "Event"


class Match(models.Model):
    Status = MatchStatus
    Source = MatchSource

    class Decision(models.TextChoices):
        NONE = "", "Undecided"
        ACCEPT = "accept", "Accept"
        REJECT = "reject", "Reject"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=8, choices=MatchSource.choices, default=MatchSource.PROPOSAL)
    proposal = models.OneToOneField(Proposal, on_delete=models.PROTECT, related_name="match", null=True, blank=True)
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="matches", null=True, blank=True)
    member_a = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    member_b = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    compatibility_score = models.FloatField(default=0.0)
    status = models.CharField(max_length=10, choices=MatchStatus.choices, default=MatchStatus.PENDING)
    decision_a = models.CharField(max_length=6, choices=Decision.choices, default="", blank=True)
    decision_b = models.CharField(max_length=6, choices=Decision.choices, default="", blank=True)
    responded_at_a = models.DateTimeField(null=True, blank=True)
    responded_at_b = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["expires_at"], name="proposals_match_expiry", condition=Q(status="pending")),
            models.Index(fields=["member_a", "status"], name="proposals_match_a"),
            models.Index(fields=["member_b", "status"], name="proposals_match_b"),
            # The business metrics read finished matches by the day they finished.
            models.Index(fields=["decided_at"], name="proposals_match_decided", condition=Q(decided_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(source="proposal", proposal__isnull=False, event__isnull=True))
                | Q(source="event", event__isnull=False, proposal__isnull=True),
                name="proposals_match_source",
            ),
            models.CheckConstraint(condition=~Q(member_a=F("member_b")), name="proposals_match_two_members"),
            models.CheckConstraint(
                condition=Q(compatibility_score__gte=0.0, compatibility_score__lte=1.0),
                name="proposals_match_score_range",
            ),
            models.UniqueConstraint(
                fields=["event", "member_a", "member_b"],
                condition=Q(event__isnull=False),
                name="proposals_match_once_per_event",
            ),
        ]
        verbose_name_plural = "matches"

    def __str__(self) -> str:
        return f"{self.member_a_id}+{self.member_b_id} ({self.status})"


class FeedItem(models.Model):
    """One member's view of one match: two rows per match, one for each member.

    The feed reads only this table, by one index range per sort, so a page costs the
    same at page 1 and page 100 however many matches a member has. ``status`` and the
    sort keys are copies of the match's, kept in step by the services that change a
    match (``feed_sync``) and checked by the ``proposals.feed_in_step`` invariant."""

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    match = models.ForeignKey(Match, on_delete=models.CASCADE, related_name="feed_items")
    other = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=MatchStatus.choices)
    compatibility = models.FloatField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+", null=True, db_index=False)
    source = models.CharField(max_length=8, choices=MatchSource.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "match"], name="proposals_feed_once"),
        ]
        indexes = [
            # The filters the newest-first reads apply ride along in the index: expiring_soon's
            # second segment (everything but open pending matches) and min_compatibility are
            # then index-only. Without them, a prepared statement's generic plan, which sizes a
            # member at the average (a few dozen items), chose a bitmap scan and a sort of all
            # of a busy member's items (thousands) over this ordered scan: 8 ms a page, not 1.
            models.Index(
                F("member"),
                F("created_at").desc(),
                F("id").desc(),
                name="proposals_feed_newest",
                include=["status", "expires_at", "compatibility"],
            ),
            models.Index(F("member"), F("compatibility").desc(), F("id").desc(), name="proposals_feed_compat"),
            models.Index(
                fields=["member", "expires_at", "id"], name="proposals_feed_expiring", condition=Q(status="pending")
            ),
            models.Index(
                F("member"), F("status"), F("created_at").desc(), F("id").desc(), name="proposals_feed_status"
            ),
            models.Index(
                F("member"),
                F("status"),
                F("compatibility").desc(),
                F("id").desc(),
                name="proposals_feed_status_compat",
            ),
            models.Index(
                F("member"),
                F("event"),
                F("created_at").desc(),
                F("id").desc(),
                name="proposals_feed_event",
                condition=Q(event__isnull=False),
            ),
            models.Index(
                F("member"),
                F("source"),
                F("created_at").desc(),
                F("id").desc(),
                name="proposals_feed_source",
                condition=Q(source="event"),
            ),
            # A member's connections (accepted matches): mutual connections and follow-all.
            models.Index(fields=["member", "other"], name="proposals_feed_connections", condition=Q(status="accepted")),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} sees match {self.match_id} ({self.status})"


class Follow(models.Model):
    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    followee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="proposals_follow_once"),
            models.CheckConstraint(condition=~Q(follower=F("followee")), name="proposals_follow_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.follower_id} follows {self.followee_id}"


class Conversation(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    match = models.OneToOneField(Match, on_delete=models.CASCADE, related_name="conversation")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"conversation of match {self.match_id}"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    body = models.TextField(max_length=4000)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [models.Index(fields=["conversation", "id"], name="proposals_message_thread")]

    def __str__(self) -> str:
        return f"{self.sender_id}: {self.body[:40]}"


class SystemMetric(models.Model):
    """The loop's vital signs, recorded every minute by beat."""

    recorded_at = models.DateTimeField(db_default=Now(), editable=False)
    queue_depth = models.PositiveIntegerField()
    active_voting = models.PositiveIntegerField()
    approved = models.PositiveIntegerField()
    rejected = models.PositiveIntegerField()
    voters_assigned = models.PositiveIntegerField()
    votes_cast = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["-recorded_at"], name="proposals_metric_latest")]

    def __str__(self) -> str:
        return f"metrics at {self.recorded_at}"
