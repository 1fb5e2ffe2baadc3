"""Writes of discovery: the catalog, members' interests, and the discovery queue's jobs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from discovery.catalog import DAY0
from discovery.models import (
    Candidate,
    Category,
    DiscoveryJob,
    DiscoveryTopic,
    Gap,
    Interest,
    InterestCategory,
    UserInterest,
)
from discovery.queue import discovery_queue
from matchplatform.exceptions import InvalidInput, LeaseLost
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
