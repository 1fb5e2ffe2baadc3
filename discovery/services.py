"""Writes of discovery: the catalog, members' interests, and the discovery queue's jobs."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.utils import timezone

from discovery.catalog import DAY0
from discovery.configs import RANKER_POLICY, RankerPolicy
from discovery.events import EVENTS_ALL, JOBS_ALL
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
from discovery.policies import policy_for_user, policy_log_context, policy_scored
from discovery.queue import discovery_queue
from discovery.ranker import Decision, decision_seed_new, distribution_log, ranker_decide
from discovery.selectors import Scored, fallback_scored
from discovery.serving import Item, catalog_clear, catalog_current
from flags.config.selectors import config_get
from flags.evaluation import flag_enabled, safe_mode_active
from matchplatform.exceptions import Conflict, InvalidInput, NotFound
from ops.db import prepared_cursor
from ops.models import QueueStatus
from ops.queue import Lease
from ops.services import queue_item_enqueue
from ops.topics import TopicWork, UnknownTopic, topic_get, topic_work

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
    and, out of attempts, dead-lettered (the queue's rules). Returns how many were claimed.
    The ``discovery.run`` worker topic (discovery.events has the map of topics)."""
    return topic_work(
        topic=JOBS_ALL,
        limit=limit or settings.DISCOVERY_CLAIM_BATCH,
        ttl=ttl or settings.DISCOVERY_LEASE_TTL_SECONDS,
        owner=owner,
    ).claimed


def events_process_batch(*, limit: int | None = None, ttl: float | None = None, owner: str | None = None) -> TopicWork:
    """Claim up to ``limit`` events of any topic and handle each by its topic's handler
    (the ``discovery.events`` worker topic, which beat and the on-commit wake run)."""
    return topic_work(
        topic=EVENTS_ALL,
        limit=limit or settings.DISCOVERY_EVENTS_CLAIM_BATCH,
        ttl=ttl or settings.DISCOVERY_EVENTS_LEASE_TTL_SECONDS,
        owner=owner,
    )


def queue_worker_run(*, topic: str, limit: int, ttl: float) -> TopicWork:
    """One pass of the queue worker over one worker topic (POST /api/queue-worker): lease up
    to ``limit`` of its rows for ``ttl`` seconds and handle them. ``InvalidInput`` naming
    the field for a topic that is not registered (nothing is leased then)."""
    try:
        topic_get(topic)
    except UnknownTopic as exc:
        raise InvalidInput(str(exc), fields={"topic": [str(exc)]}) from None
    from discovery.row_security import system_scope

    # A platform action whoever asked: a service account is a member to the row-security
    # middleware, and would otherwise see (and be refused writing) only its own rows.
    with system_scope():
        return topic_work(topic=topic, limit=limit, ttl=ttl)


# --- suggestions, and the decision behind each -----------------------------------------------


@dataclass(frozen=True)
class Suggestions:
    candidates: list[Item]  # what each shows: name, kind, the category's slug and name
    decision_id: str | None  # the logged decision (None when logging is off or nothing was served)
    personal: bool
    explored: bool


def _policy_hash(policy: RankerPolicy) -> str:
    return hashlib.sha256(json.dumps(policy.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


# The columns a decision is logged with (the others: their defaults, decided_at the database's).
_LOG_FIELDS = (
    "decision_id",
    "user",
    "surface",
    "policy_version",
    "policy_hash",
    "candidate_ids",
    "distribution",
    "slate",
    "chosen",
    "p_exp",
    "explored",
    "randomized",
    "seed",
    "score",
    "context",
)


@functools.cache
def _log_insert(vendor: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """The INSERT of one decision for this database vendor, and its fields (their own
    get_db_prep_save turns each value into what the column takes)."""
    fields = tuple(f for name in _LOG_FIELDS if isinstance(f := LearningEvent._meta.get_field(name), Field))
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(LearningEvent._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 - names from model meta
    return sql, fields


def decision_log(
    *, user: User, surface: str, policy: RankerPolicy, scored: Scored, decision: Decision, safe: bool
) -> str:
    """Log one served decision whole (the candidate set, the distribution, the chosen item and
    its propensity, the seed, the policy that made it) as a learning event; its decision id.
    A decision that was not randomized is logged with p_exp 0 (it cannot be reweighted).

    One INSERT, written straight (every suggestion request makes one, into the largest table):
    the model's own fields prepare the values, so it stores what ``objects.create`` would;
    the distribution in its two-entry form (ranker.distribution_log)."""
    decision_id = uuid.uuid4()
    values = (
        decision_id,
        user.pk,
        surface,
        policy.version,
        _policy_hash(policy),
        list(scored.candidate_ids),
        distribution_log(decision.distribution, top=decision.top),
        list(decision.slate),
        decision.chosen,
        decision.p_exp if decision.randomized else 0.0,
        decision.explored,
        decision.randomized,
        decision.seed,
        decision.chosen_score,
        {"personal": scored.personal, "safe_mode": safe, "epsilon": decision.epsilon, **policy_log_context(policy)},
    )
    sql, fields = _log_insert(connection.vendor)
    with prepared_cursor() as cursor:  # the same statement every request: prepared once per connection
        cursor.execute(sql, [f.get_db_prep_save(v, connection) for f, v in zip(fields, values, strict=True)])
    return str(decision_id)


def suggestions_for_user(
    *, user: User, limit: int | None = None, surface: str = "suggestions", _retried: bool = False
) -> Suggestions:
    """The member's suggestions, ranked by their epsilon-greedy policy, and the decision logged
    whole (candidate set, distribution, chosen item and its propensity, the seed).

    ``learning.enabled`` off for the member: no exploration (epsilon 0) and nothing logged:
    exploring is only worth its cost when what it learns is kept, and the Day-0 canary rolls
    learning out to a share of members with this flag, so the others must be served exactly as
    before it. In safe mode the policy's epsilon is 0, the slate is the fallback one, and the
    decision is logged as not randomized (p_exp 0)."""
    if not flag_enabled(MARKETPLACE_SUGGEST, user=user):
        return Suggestions(candidates=[], decision_id=None, personal=False, explored=False)
    policy = policy_for_user(user=user)
    size = min(limit or policy.slate_size, policy.slate_size)
    safe = safe_mode_active()
    # One catalog for the scoring and the slate's names: every id scored is one it shows.
    catalog = catalog_current()
    scored = (
        fallback_scored(size=size, catalog=catalog)
        if safe
        else policy_scored(user=user, policy=policy, fallback_size=size, catalog=catalog)
    )
    if not scored.candidate_ids:
        return Suggestions(candidates=[], decision_id=None, personal=False, explored=False)
    learning = flag_enabled(LEARNING_ENABLED, user=user)
    decision = ranker_decide(
        candidate_ids=scored.candidate_ids,
        scores=scored.scores,
        epsilon=policy.epsilon if learning and not safe else 0.0,
        seed=decision_seed_new(),
        slate_size=size,
    )
    try:
        decision_id = (
            decision_log(user=user, surface=surface, policy=policy, scored=scored, decision=decision, safe=safe)
            if learning
            else None
        )
    except IntegrityError:
        # A candidate deleted (not deactivated) within this process's catalog check interval:
        # its decision cannot point at it. Reload the catalog and decide again, once.
        if _retried or connection.in_atomic_block:
            raise
        catalog_clear()
        return suggestions_for_user(user=user, limit=limit, surface=surface, _retried=True)
    return Suggestions(
        candidates=[catalog.items[i] for i in decision.slate],
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


# --- service tokens, for schedulers that drive the queue worker ---------------------------------

RUN_QUEUE_WORKER = "discovery.run_queue_worker"


def service_token_create(*, username: str, rotate: bool = False) -> str:
    """A service account for an external scheduler: a user without a usable password (it
    cannot sign in, only present its token), granted ``discovery.run_queue_worker`` and
    nothing else, and its API token (``Authorization: Token <key>``), which is returned.

    Refused (Conflict): a name that belongs to a person (a usable password, or staff), and a
    service account that already has a token unless ``rotate`` (which replaces it: the old
    token stops working at once)."""
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    app_label, codename = RUN_QUEUE_WORKER.split(".")
    with transaction.atomic():
        user, created = User.objects.select_for_update().get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        elif user.has_usable_password() or user.is_staff or user.is_superuser:
            raise Conflict(f"{username!r} is a person's account, not a service account.")
        existing = Token.objects.filter(user=user)
        if existing.exists() and not rotate:
            raise Conflict(f"{username!r} already has a token; rotate it to replace it.")
        existing.delete()
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return str(Token.objects.create(user=user).key)


def queue_dead_letters_requeue(*, name: str, dead_letter_ids: list[int]) -> int:
    """Requeue the rows behind these open dead letters of one of discovery's queues
    (``discovery`` or ``events``); letters of other queues are left alone. Returns how many
    rows went back to queued (ops.services.dead_letters_requeue does the work)."""
    from discovery.queue import QUEUES_BY_NAME
    from ops.models import DeadLetter
    from ops.services import dead_letters_requeue

    queue = QUEUES_BY_NAME.get(name)
    if queue is None:
        raise NotFound(f"No discovery queue is named {name!r}.")
    ids = list(
        DeadLetter.objects.filter(pk__in=dead_letter_ids, queue=queue.label, requeued_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    return dead_letters_requeue(dead_letter_ids=ids) if ids else 0
