"""The proposals runbook as code."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.db.models.functions import Now

from ops.invariants import figure_invariant, rows_invariant
from proposals.models import OPEN_PAIR_STATUSES, Match, Profile, Proposal, ProposalStatus, SystemMetric, Vote

APP = "proposals"


@rows_invariant(
    name="proposals.no_duplicate_open_pair", app=APP, description="No pair is queued, voting or approved twice"
)
def duplicate_pairs() -> list[str]:
    return [
        f"{row['pair_hash']} x{row['n']}"
        for row in Proposal.objects.filter(status__in=OPEN_PAIR_STATUSES)
        .values("pair_hash")
        .annotate(n=Count("id"))
        .filter(n__gt=1)[:20]
    ]


@rows_invariant(
    name="proposals.voting_has_its_voters",
    app=APP,
    description="Every voting proposal has exactly its N voters, none of them in the pair",
)
def voters_wrong() -> list[str]:
    wrong = (
        Proposal.objects.filter(status=ProposalStatus.VOTING)
        .annotate(
            n=Count("voters", distinct=True),
            in_pair=Count(
                "voters",
                filter=Q(voters__voter=F("member_a")) | Q(voters__voter=F("member_b")),
                distinct=True,
            ),
        )
        .filter(~Q(n=F("voters_required")) | Q(in_pair__gt=0))
        .values_list("public_id", "n", "in_pair")[:20]
    )
    return [f"{pid}: {n} voters, {in_pair} in the pair" for pid, n, in_pair in wrong]


@rows_invariant(
    name="proposals.votes_from_assigned_voters", app=APP, description="No vote comes from an unassigned voter"
)
def votes_unassigned() -> list[str]:
    # A vote hangs off its assignment; it must be by that assignment's voter, on its proposal.
    bad = Vote.objects.exclude(voter=F("assignment__voter"), proposal=F("assignment__proposal"))
    return [f"vote {pk}" for pk in bad.values_list("pk", flat=True)[:20]]


@figure_invariant(
    name="proposals.stuck_proposals",
    app=APP,
    description="Voting proposals whose deadline passed over 5 minutes ago",
    critical_above=0,
)
def stuck_proposals() -> float:
    return float(
        Proposal.objects.filter(status=ProposalStatus.VOTING, deadline__lt=Now() - timedelta(minutes=5)).count()
    )


@rows_invariant(
    name="proposals.matches_expire_on_time",
    app=APP,
    description="No pending match is more than 60 s past its deadline (the expiry sweep is running)",
)
def matches_overdue() -> list[str]:
    overdue = Match.objects.filter(status=Match.Status.PENDING, expires_at__lt=Now() - timedelta(seconds=60))
    return [
        f"match {pid} due {due:%Y-%m-%d %H:%M:%S}" for pid, due in overdue.values_list("public_id", "expires_at")[:20]
    ]


@rows_invariant(
    name="proposals.feed_in_step",
    app=APP,
    description="Matches finished in the last day show the same status in both members' feeds",
)
def feed_out_of_step() -> list[str]:
    # Bounded to the last day's finished matches (an index range), so it stays cheap at
    # millions of matches; a status change is where feed rows could drift.
    recent = Match.objects.filter(decided_at__gte=Now() - timedelta(days=1))
    wrong = recent.annotate(rows=Count("feed_items", filter=Q(feed_items__status=F("status")))).exclude(rows=2)
    return [f"match {pid}: {rows} of 2 feed rows agree" for pid, rows in wrong.values_list("public_id", "rows")[:20]]


def _latest() -> SystemMetric | None:
    return SystemMetric.objects.order_by("-recorded_at").first()


def _loop_can_run() -> bool:
    """The loop needs a pair plus its voters; below that the figures mean nothing (a
    platform that runs only match runs has no members at all)."""
    needed = settings.PROPOSALS_VOTERS_PER_PROPOSAL + 2
    return Profile.objects.filter(is_active=True)[:needed].count() >= needed


@figure_invariant(
    name="proposals.queue_depth", app=APP, description="Pairs waiting in the generation queue", warn_below=30
)
def queue_depth() -> float | None:
    if not _loop_can_run():
        return None
    return float(Proposal.objects.filter(status=ProposalStatus.QUEUED).count())


@figure_invariant(name="proposals.active_voting", app=APP, description="Proposals open for voting", critical_below=5)
def active_voting() -> float | None:
    if not _loop_can_run():
        return None
    return float(Proposal.objects.filter(status=ProposalStatus.VOTING).count())


@figure_invariant(
    name="proposals.metrics_age_minutes",
    app=APP,
    description="Minutes since the loop last recorded its metrics",
    critical_above=10,
    unit="min",
)
def metrics_age() -> float | None:
    if not _loop_can_run():
        return None
    fresh = SystemMetric.objects.filter(recorded_at__gte=Now() - timedelta(minutes=10)).exists()
    if fresh:
        return 0.0
    from django.utils import timezone

    latest = _latest()
    if latest is not None:
        return (timezone.now() - latest.recorded_at).total_seconds() / 60
    # Never recorded: count from when the loop started (its first proposal, by the primary
    # key: created_at has no index), so a platform that has just started is not critical for
    # the minute before beat first records them, and one whose beat never runs still is, ten
    # minutes on.
    started = Proposal.objects.order_by("pk").values_list("created_at", flat=True).first()
    return 0.0 if started is None else (timezone.now() - started).total_seconds() / 60


def proposals_healthy() -> bool:
    """HEALTHY: the queue and the voting set are at their low marks and nothing is stuck."""
    queued, voting = queue_depth(), active_voting()
    return (
        queued is not None
        and voting is not None
        and queued >= settings.PROPOSALS_QUEUE_LOW
        and voting >= settings.PROPOSALS_VOTING_LOW
        and stuck_proposals() == 0
    )
