"""Topics: named kinds of work, each mapped in code to the lease queue that holds it and the
handler that does it, so one worker (a Celery task, beat, or the HTTP trigger) can work any
of them by name.

A topic is ``(queue, where, handle)``: the rows of ``queue`` that ``where`` selects (``None``:
every row of the queue) are the topic's work, and ``handle(lease=...)`` processes one leased
row and acks it, or raises. Several topics may share a queue (a queue whose rows carry a
``topic`` column); a topic name is unique across queues, so a name alone says what to lease.

``topic_work`` is the worker: claim up to ``limit`` rows of the topic with the lease ``ttl``,
run the handler on each, and fail the ones that raised by the queue's own rules (retry with
backoff, then dead-letter). Nothing here knows a domain: apps register their topics when
they are ready.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from matchplatform.exceptions import LeaseLost
from ops.queue import Lease, LeaseQueue, queue_get
from ops.worker import worker_id

logger = logging.getLogger(__name__)

Handle = Callable[..., object]  # handle(*, lease: Lease) -> anything; it acks the lease or raises


class UnknownTopic(LookupError):
    """No topic of that name is registered; the message lists those that are."""

    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(sorted(_TOPICS)) or "none"
        super().__init__(f"No topic is named {name!r}; the topics are: {known}.")


class TopicPermanentError(Exception):
    """Raised by a handler when retrying cannot help (a malformed payload): the row goes
    straight to the dead letters instead of using its remaining attempts."""


@dataclass(frozen=True)
class Topic:
    name: str
    queue: str  # the LeaseQueue's label
    handle: Handle
    where: Q | Mapping[str, Any] | None = None
    description: str = ""

    @property
    def lease_queue(self) -> LeaseQueue:
        return queue_get(self.queue)


_TOPICS: dict[str, Topic] = {}


def topic_register(
    *,
    name: str,
    queue: LeaseQueue,
    handle: Handle,
    where: Q | Mapping[str, Any] | None = None,
    description: str = "",
) -> Topic:
    """Register (or, at a re-import, replace) the topic ``name``. A name registered for
    another queue is refused: a topic name must say unambiguously what to lease."""
    existing = _TOPICS.get(name)
    if existing is not None and existing.queue != queue.label:
        raise ValueError(f"The topic {name!r} already belongs to the queue {existing.queue}.")
    topic = Topic(name=name, queue=queue.label, handle=handle, where=where, description=description)
    _TOPICS[name] = topic
    return topic


def topic_get(name: str) -> Topic:
    """The topic ``name``; ``UnknownTopic`` (a LookupError naming the known ones) otherwise."""
    try:
        return _TOPICS[name]
    except KeyError:
        raise UnknownTopic(name) from None


def topics_all(*, queue: str | None = None) -> list[Topic]:
    """Every registered topic (of one queue's label, if given), by name."""
    return sorted((t for t in _TOPICS.values() if queue is None or t.queue == queue), key=lambda t: t.name)


@dataclass(frozen=True)
class TopicWork:
    """What one pass of the worker did. ``processed`` rows were handled and acked;
    ``errors`` raised (or lost their lease) and were failed, of which ``dead`` ran out of
    attempts (or were refused for good) and are now dead letters. processed + errors =
    claimed."""

    topic: str
    claimed: int
    processed: int
    errors: int
    dead: int


def topic_work(*, topic: str, limit: int, ttl: float, owner: str | None = None) -> TopicWork:
    """Lease up to ``limit`` rows of ``topic`` for ``ttl`` seconds and handle each (see the
    module's docstring). Raises ``UnknownTopic`` before leasing anything for a name not
    registered. Each handler runs in its own transaction(s): one failing never undoes
    another."""
    spec = topic_get(topic)
    queue = spec.lease_queue
    leases = queue.claim(owner=owner or worker_id(), limit=limit, ttl=ttl, where=spec.where)
    claimed_at = time.monotonic()
    processed = errors = dead = 0
    for lease in leases:
        try:
            if time.monotonic() - claimed_at > ttl / 2:
                # The rows are handled one by one under one lease time: renew a row's lease
                # before its turn once half of it has gone, so a long batch does not let its
                # last rows expire and be worked twice.
                queue.extend(lease=lease, ttl=ttl)
            spec.handle(lease=lease)
        except LeaseLost:
            # Someone else holds the row now (our lease expired and it was rescued): the
            # result was dropped, and the row is theirs to finish.
            logger.warning("%s #%s: lease lost, result dropped", topic, lease.id)
            errors += 1
            continue
        except Exception as exc:
            logger.exception("%s #%s failed", topic, lease.id)
            errors += 1
            if _fail(queue=queue, lease=lease, exc=exc) == queue.dead_status:
                dead += 1
            continue
        processed += 1
    return TopicWork(topic=topic, claimed=len(leases), processed=processed, errors=errors, dead=dead)


def _fail(*, queue: LeaseQueue, lease: Lease, exc: Exception) -> str | None:
    """Fail the lease by the queue's rules; the new status (None when the lease was lost)."""
    try:
        return queue.fail(
            lease=lease,
            error=f"{type(exc).__name__}: {exc}",
            retryable=not isinstance(exc, TopicPermanentError),
        )
    except LeaseLost:
        return None


__all__ = [
    "Topic",
    "TopicPermanentError",
    "TopicWork",
    "UnknownTopic",
    "topic_get",
    "topic_register",
    "topic_work",
    "topics_all",
]
