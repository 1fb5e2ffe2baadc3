"""Writes of discovery: the catalog, members' interests, and the discovery queue's jobs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from discovery.catalog import DAY0
from discovery.configs import RANKER_POLICY, RankerPolicy
from discovery.models import (
    Candidate,
    Category,
    DiscoveryJob,
    DiscoveryTopic,
    Gap,
    IntentSignal,
    Interest,
    InterestCategory,
    LearningEvent,
    UserInterest,
)
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.queue import discovery_queue
from discovery.ranker import decision_seed_new, ranker_decide
from discovery.selectors import candidates_scored_for_user, fallback_scored
from flags.config.selectors import config_get
from flags.evaluation import flag_enabled, safe_mode_active
from matchplatform.exceptions import InvalidInput, LeaseLost, NotFound
from ops.models import QueueStatus
from ops.queue import Lease
from ops.services import queue_item_enqueue
from ops.worker import worker_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogCounts:
    interests: int
    categories: int
    mappings: int
    candidates: int


def catalog_seed_day0() -> CatalogCounts:
    """Load the starter catalog (idempotent: a second run changes nothing and adds nothing)."""
    with transaction.atomic():
        for row in DAY0:
            interest, _ = Interest.objects.get_or_create(slug=row.interest, defaults={"name": row.interest_name})
            category, _ = Category.objects.get_or_create(slug=row.category, defaults={"name": row.category_name})
            InterestCategory.objects.get_or_create(interest=interest, category=category)
            Candidate.objects.get_or_create(
                name=row.candidate, category=category, defaults={"kind": row.kind, "popularity": row.popularity}
            )
    return CatalogCounts(
        interests=Interest.objects.count(),
        categories=Category.objects.count(),
        mappings=InterestCategory.objects.count(),
        candidates=Candidate.objects.count(),
    )


# --- members' interests and the discovery queue -------------------------------------------------


def category_ensure_for_interest(*, interest: Interest) -> Category:
    """The interest's category: its first mapped one, else a new one of the same name, mapped
    (an interest is never left with nowhere to look for candidates)."""
    category = interest.categories.order_by("id").first()
    if category is not None:
        return category
    with transaction.atomic():
        category, _ = Category.objects.get_or_create(slug=interest.slug, defaults={"name": interest.name})
        InterestCategory.objects.get_or_create(interest=interest, category=category)
    return category


def discovery_enqueue_for_user(
    *, user: User, topic: str = DiscoveryTopic.INTERESTS_CHANGED, interest_ids: Iterable[int] | None = None
) -> list[int]:
    """A discovery job per interest of the member (or per one of ``interest_ids``), in the
    caller's transaction, with a worker woken when it commits; an interest that already has
    a job waiting or running gets none (returns the new jobs' ids)."""
    wanted = UserInterest.objects.filter(user=user)
    if interest_ids is not None:
        wanted = wanted.filter(interest_id__in=list(interest_ids))
    created: list[int] = []
    for interest_id in wanted.order_by("interest_id").values_list("interest_id", flat=True):
        try:
            with transaction.atomic():  # a savepoint: a job already in flight is not an error
                job = DiscoveryJob.objects.create(topic=topic, user=user, interest_id=interest_id)
        except IntegrityError:
            continue
        queue_item_enqueue(queue=discovery_queue, item_id=job.pk)
        created.append(job.pk)
    return created


def user_interests_set(*, user: User, affinities: dict[str, float]) -> list[UserInterest]:
    """Make the member's interests exactly these (interest slug -> affinity 0..1), and queue
    discovery for the ones that are new or changed. InvalidInput names an unknown interest or
    an affinity out of range; nothing is written then."""
    errors: dict[str, list[str]] = {}
    known = {i.slug: i for i in Interest.objects.filter(slug__in=list(affinities))}
    for slug, affinity in affinities.items():
        if slug not in known:
            errors.setdefault("interests", []).append(f"No interest is named {slug!r}.")
        elif isinstance(affinity, bool) or not isinstance(affinity, int | float) or not 0 <= affinity <= 1:
            errors.setdefault(f"interests.{slug}", []).append("An affinity is a number from 0 to 1.")
    if errors:
        raise InvalidInput("The interests are not valid.", fields=errors)
    with transaction.atomic(durable=True):
        current = {ui.interest_id: ui for ui in UserInterest.objects.select_for_update().filter(user=user)}
        changed: list[int] = []
        for slug, affinity in affinities.items():
            interest = known[slug]
            category_ensure_for_interest(interest=interest)
            row = current.pop(interest.pk, None)
            if row is None:
                UserInterest.objects.create(user=user, interest=interest, affinity=float(affinity))
                changed.append(interest.pk)
            elif row.affinity != float(affinity):
                UserInterest.objects.filter(pk=row.pk).update(affinity=float(affinity))
                changed.append(interest.pk)
        if current:
            UserInterest.objects.filter(pk__in=[row.pk for row in current.values()]).delete()
        if changed:
            discovery_enqueue_for_user(user=user, topic=DiscoveryTopic.INTERESTS_CHANGED, interest_ids=changed)
    return list(UserInterest.objects.filter(user=user).select_related("interest").order_by("interest__slug"))


def discovery_job_process(*, lease: Lease) -> str:
    """Count the active candidates of the job's interest's categories; too few is a gap (kept
    up to date), enough clears it. Acks the job with what it found; returns its new status."""
    job = DiscoveryJob.objects.select_related("interest").get(pk=lease.id)
    found = Candidate.objects.filter(active=True, category__interests=job.interest).count()
    needed = int(settings.DISCOVERY_MIN_CANDIDATES)

    def record() -> None:
        if found < needed:
            Gap.objects.update_or_create(
                interest=job.interest, defaults={"candidates_found": found, "candidates_needed": needed}
            )
        else:
            Gap.objects.filter(interest=job.interest).delete()

    discovery_queue.ack(lease=lease, fields={"candidates_found": found}, on_ack=record)
    return QueueStatus.DONE


def discovery_jobs_process_batch(
    *, limit: int | None = None, ttl: float | None = None, owner: str | None = None
) -> int:
    """Claim up to ``limit`` jobs and process each; a job that fails is retried with backoff
    and, out of attempts, dead-lettered (the queue's rules). Returns how many were claimed."""
    leases = discovery_queue.claim(
        owner=owner or worker_id(),
        limit=limit or settings.DISCOVERY_CLAIM_BATCH,
        ttl=ttl or settings.DISCOVERY_LEASE_TTL_SECONDS,
    )
    for lease in leases:
        try:
            discovery_job_process(lease=lease)
        except LeaseLost:
            logger.warning("discovery job #%s: lease lost, result dropped", lease.id)
        except Exception as exc:
            logger.exception("discovery job #%s failed", lease.id)
            with contextlib.suppress(LeaseLost):
                discovery_queue.fail(lease=lease, error=f"{type(exc).__name__}: {exc}")
    return len(leases)


# --- suggestions, and the decision behind each -----------------------------------------------


@dataclass(frozen=True)
class Suggestions:
    candidates: list[Candidate]
    decision_id: str | None  # the logged decision (None when logging is off or nothing was served)
    personal: bool
    explored: bool


def _policy_hash(policy: RankerPolicy) -> str:
    return hashlib.sha256(json.dumps(policy.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def suggestions_for_user(*, user: User, limit: int | None = None, surface: str = "suggestions") -> Suggestions:
    """The member's suggestions, ranked by the configured epsilon-greedy policy, and the
    decision logged whole (candidate set, distribution, chosen item and its propensity, the
    seed) unless ``learning.enabled`` is off. In safe mode the policy's epsilon is 0, the
    slate is the fallback one, and the decision is logged as not randomized (p_exp 0)."""
    if not flag_enabled(MARKETPLACE_SUGGEST, user=user):
        return Suggestions(candidates=[], decision_id=None, personal=False, explored=False)
    policy = config_get(RANKER_POLICY)
    size = min(limit or policy.slate_size, policy.slate_size)
    safe = safe_mode_active()
    scored = fallback_scored(size=size) if safe else candidates_scored_for_user(user=user, fallback_size=size)
    if not scored.candidate_ids:
        return Suggestions(candidates=[], decision_id=None, personal=False, explored=False)
    decision = ranker_decide(
        candidate_ids=scored.candidate_ids,
        scores=scored.scores,
        epsilon=0.0 if safe else policy.epsilon,
        seed=decision_seed_new(),
        slate_size=size,
    )
    decision_id = None
    if flag_enabled(LEARNING_ENABLED, user=user):
        event = LearningEvent.objects.create(
            user=user,
            surface=surface,
            policy_version=policy.version,
            policy_hash=_policy_hash(policy),
            candidate_ids=list(scored.candidate_ids),
            distribution={str(k): v for k, v in decision.distribution.items()},
            slate=list(decision.slate),
            chosen_id=decision.chosen,
            p_exp=decision.p_exp if decision.randomized else 0.0,
            explored=decision.explored,
            randomized=decision.randomized,
            seed=decision.seed,
            score=decision.chosen_score,
            context={"personal": scored.personal, "safe_mode": safe, "epsilon": decision.epsilon},
        )
        decision_id = str(event.decision_id)
    by_id = Candidate.objects.in_bulk(list(decision.slate))
    return Suggestions(
        candidates=[by_id[i] for i in decision.slate if i in by_id],
        decision_id=decision_id,
        personal=scored.personal,
        explored=decision.explored,
    )


# --- signals, and the rewards they bring -------------------------------------------------------

REWARDING = {IntentSignal.Kind.CLICK: 1.0, IntentSignal.Kind.SAVE: 1.0}


def signal_record(*, user: User, candidate_id: int, kind: str, decision_id: str | None = None) -> IntentSignal:
    """Record what a member did with a candidate. A click or a save on the item a decision of
    theirs led with, within the policy's attribution window, is that decision's reward (the
    first one only; never overwritten). ``decision_id`` names the decision the member acted
    on (another member's is not found); without it, their latest decision that served the
    candidate within the window is the one."""
    if kind not in IntentSignal.Kind.values:
        raise InvalidInput(
            f"A signal is one of {', '.join(IntentSignal.Kind.values)}.", fields={"kind": ["Not a signal kind."]}
        )
    candidate = Candidate.objects.filter(pk=candidate_id, active=True).first()
    if candidate is None:
        raise NotFound("No such candidate.")
    window = timedelta(seconds=config_get(RANKER_POLICY).attribution_seconds)
    with transaction.atomic():
        decisions = LearningEvent.objects.select_for_update(no_key=True).filter(
            user=user, decided_at__gte=timezone.now() - window
        )
        if decision_id is not None:
            decision = decisions.filter(decision_id=decision_id).first()
            if decision is None and not LearningEvent.objects.filter(user=user, decision_id=decision_id).exists():
                raise NotFound("No such decision.")  # not theirs, or none: the same answer
        else:
            recent = decisions.order_by("-decided_at", "-id")[:50]
            decision = next((d for d in recent if candidate.pk in (d.slate or [])), None)
        signal = IntentSignal.objects.create(user=user, candidate=candidate, kind=kind, decision=decision)
        reward = REWARDING.get(IntentSignal.Kind(kind))
        if decision is not None and reward is not None and decision.chosen_id == candidate.pk:
            LearningEvent.objects.filter(pk=decision.pk, reward__isnull=True).update(
                reward=reward, rewarded_at=timezone.now()
            )
    return signal
