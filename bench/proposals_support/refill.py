"""Part 1: fill the generation queue and the voting set from empty, ours vs naive.

Ours is the production code, called as beat's tick calls it: ``proposal_queue_refill()`` and
``proposals_open()``. The naive version does what a first implementation would: random pairs
one at a time, a query per duplicate check, one INSERT per row; voters ordered by a COUNT of
their open assignments, one query per proposal."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import Now

from bench.common.db import one, queries_counted

MAX_REFILL_CALLS = 4


@dataclass
class PairsBestCall:
    seconds: float
    pool: int
    limit: int
    args: dict[str, Any]
    result: list[tuple[int, int, float]]


@dataclass
class PairsBestSpy:
    """Wraps ``proposals.voting.services.pairs_best`` (the bench process only) to time it and keep
    its inputs, so the prototype can be run on exactly the same pool."""

    calls: list[PairsBestCall] = field(default_factory=list)

    def __enter__(self) -> PairsBestSpy:
        import proposals.voting.services as services

        self._services = services
        self._original = services.pairs_best

        def spy(**kwargs: Any) -> list[tuple[int, int, float]]:
            started = time.perf_counter()
            result = self._original(**kwargs)
            elapsed = time.perf_counter() - started
            kept = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
            self.calls.append(PairsBestCall(elapsed, int(kwargs["ids"].shape[0]), int(kwargs["limit"]), kept, result))
            return result

        services.pairs_best = spy
        return self

    def __exit__(self, *exc: object) -> None:
        self._services.pairs_best = self._original


@dataclass
class FillResult:
    refill_s: float
    refill_calls: int
    refill_queries: int
    queued: int
    open_s: float
    open_queries: int
    voting: int
    mean_compat: float
    pairs_best_s: float = 0.0
    pool: int = 0
    refill_db_s: float = 0.0
    open_db_s: float = 0.0
    complete: bool = True  # False: the naive version ran out of its time budget
    refill_estimated: bool = False
    open_estimated: bool = False


def _mean_compat() -> float:
    value = one("SELECT avg(compatibility) FROM proposals_proposal WHERE status IN ('queued', 'voting')")
    return float(value or 0.0)


def _queued() -> int:
    return int(one("SELECT count(*) FROM proposals_proposal WHERE status = 'queued'"))


def ours_fill(*, spy: PairsBestSpy) -> FillResult:
    from proposals.voting.services import proposal_queue_refill, proposals_open

    high = settings.PROPOSALS_QUEUE_HIGH
    before = len(spy.calls)
    calls = 0
    with queries_counted() as q_refill:
        started = time.perf_counter()
        proposal_queue_refill()
        calls = 1
        while calls < MAX_REFILL_CALLS and _queued() < high:
            proposal_queue_refill(force=True)
            calls += 1
        refill_s = time.perf_counter() - started
    queued = _queued()
    with queries_counted() as q_open:
        started = time.perf_counter()
        proposals_open()
        open_s = time.perf_counter() - started
    voting = one("SELECT count(*) FROM proposals_proposal WHERE status = 'voting'")
    mine = spy.calls[before:]
    return FillResult(
        refill_s=refill_s,
        refill_calls=calls,
        refill_queries=q_refill.n,
        queued=queued,
        open_s=open_s,
        open_queries=q_open.n,
        voting=voting,
        mean_compat=_mean_compat(),
        pairs_best_s=sum(c.seconds for c in mine),
        pool=max((c.pool for c in mine), default=0),
        refill_db_s=q_refill.seconds,
        open_db_s=q_open.seconds,
    )


def naive_refill(*, rng: random.Random, budget_s: float) -> tuple[int, int, float, bool]:
    """Random pairs one at a time until the queue's high mark; returns (inserted, queries,
    seconds, finished)."""
    from django.contrib.auth import get_user_model

    from proposals.models import OPEN_PAIR_STATUSES, Profile, Proposal, ProposalStatus, pair_hash_of
    from proposals.voting.compat import compatibility_score

    high = settings.PROPOSALS_QUEUE_HIGH
    ids = get_user_model().objects.order_by("id").values_list("id", flat=True)
    low_id, high_id = ids.first(), ids.last()
    assert low_id is not None and high_id is not None
    inserted = attempts = 0
    with queries_counted() as q:
        started = time.perf_counter()
        while inserted < high and attempts < high * 50 and time.perf_counter() - started < budget_s:
            attempts += 1
            a, b = sorted(rng.sample(range(low_id, high_id + 1), 2))
            profiles = {
                p["user_id"]: p
                for p in Profile.objects.filter(user_id__in=(a, b), is_active=True).values(
                    "user_id", "interest_mask", "privacy"
                )
            }
            if len(profiles) < 2:
                continue
            pair = pair_hash_of(a, b)
            if Proposal.objects.filter(pair_hash=pair, status__in=OPEN_PAIR_STATUSES).exists():
                continue
            busy = Proposal.objects.filter(
                Q(member_a__in=(a, b)) | Q(member_b__in=(a, b)),
                status__in=(ProposalStatus.QUEUED, ProposalStatus.VOTING),
            ).exists()
            if busy:
                continue
            pa, pb = profiles[a], profiles[b]
            Proposal.objects.create(
                member_a_id=a,
                member_b_id=b,
                pair_hash=pair,
                compatibility=compatibility_score(
                    mask_a=pa["interest_mask"],
                    mask_b=pb["interest_mask"],
                    both_public=pa["privacy"] == pb["privacy"] == Profile.Privacy.PUBLIC,
                ),
                status=ProposalStatus.QUEUED,
                voters_required=settings.PROPOSALS_VOTERS_PER_PROPOSAL,
                approve_threshold=settings.PROPOSALS_APPROVE_THRESHOLD,
            )
            inserted += 1
        elapsed = time.perf_counter() - started
    return inserted, q.n, elapsed, inserted >= high


def naive_open(*, budget_s: float) -> tuple[int, int, float, bool]:
    """Open the best queued proposals one at a time; voters ordered by a COUNT of their open
    assignments (one aggregate over every member per proposal)."""
    from proposals.models import Profile, Proposal, ProposalStatus, ProposalVoter

    high = settings.PROPOSALS_VOTING_HIGH
    window = timedelta(seconds=settings.PROPOSALS_VOTING_WINDOW_SECONDS)
    opened = 0
    with queries_counted() as q:
        started = time.perf_counter()
        while opened < high and time.perf_counter() - started < budget_s:
            with transaction.atomic():
                queued = Proposal.objects.filter(status=ProposalStatus.QUEUED)
                proposal = queued.order_by("-compatibility", "id").first()
                if proposal is None:
                    break
                load = Count(
                    "user__assignments",
                    filter=Q(user__assignments__voted=False, user__assignments__proposal__status=ProposalStatus.VOTING),
                )
                voters = list(
                    Profile.objects.filter(is_active=True)
                    .exclude(user_id__in=(proposal.member_a_id, proposal.member_b_id))
                    .annotate(load=load)
                    .order_by("load", "id")
                    .values_list("user_id", flat=True)[: proposal.voters_required]
                )
                Proposal.objects.filter(pk=proposal.pk).update(
                    status=ProposalStatus.VOTING, voting_started_at=Now(), deadline=Now() + window
                )
                for voter in voters:
                    ProposalVoter.objects.create(
                        proposal=proposal,
                        voter_id=voter,
                        member_a_id_copy=proposal.member_a_id,
                        member_b_id_copy=proposal.member_b_id,
                    )
            opened += 1
        elapsed = time.perf_counter() - started
    return opened, q.n, elapsed, opened >= high


def naive_fill(*, rng: random.Random, budget_s: float) -> FillResult:
    """Both naive steps. A step that runs out of ``budget_s`` is reported as an estimate,
    scaled linearly from the part it did (each of its rows costs about the same)."""
    from proposals.models import Proposal, ProposalStatus

    q_high, v_high = settings.PROPOSALS_QUEUE_HIGH, settings.PROPOSALS_VOTING_HIGH
    inserted, refill_queries, refill_s, refill_done = naive_refill(rng=rng, budget_s=budget_s)
    refill_estimated = not refill_done and inserted > 0
    if refill_estimated:
        refill_s *= q_high / inserted
        refill_queries = round(refill_queries * q_high / inserted)
    if inserted < v_high:
        # Not enough queued for the voting set: top up with ours so the naive opening can
        # still be timed (only reachable when the naive refill ran out of time).
        from proposals.voting.services import proposal_queue_refill

        proposal_queue_refill(force=True)
    queued = Proposal.objects.filter(status=ProposalStatus.QUEUED).count()
    compat = _mean_compat()
    opened, open_queries, open_s, open_done = naive_open(budget_s=budget_s)
    open_estimated = not open_done and opened > 0
    if open_estimated:
        open_s *= v_high / opened
        open_queries = round(open_queries * v_high / opened)
    return FillResult(
        refill_s=refill_s,
        refill_calls=inserted,
        refill_queries=refill_queries,
        queued=queued,
        open_s=open_s,
        open_queries=open_queries,
        voting=opened,
        mean_compat=compat,
        complete=refill_done and open_done,
        refill_estimated=refill_estimated,
        open_estimated=open_estimated,
    )
