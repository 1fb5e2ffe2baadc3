"""Discovery's events, and the topics its queue worker knows.

The design, in one place:

- **Two queues, one mechanism.** Discovery jobs (DiscoveryJob: find one member's candidates
  for one interest) and events (DiscoveryEvent: something happened to a member) are both ops
  lease queues (discovery.queue). Neither has a worker of its own: ``ops.topics.topic_work``
  leases the rows of a *worker topic* and runs the topic's handler on each.
- **Worker topics** (names unique across both queues, so a name alone says what to lease):

  - ``discovery.user-signup`` (events queue): sign-up events; queue discovery for the member.
  - ``discovery.interests-changed`` (events queue): interests-changed events; queue discovery
    for the interests named (all of the member's when none are).
  - ``discovery.events`` (events queue): every event, each by its own topic's handler (what
    beat, every minute, and the on-commit wake run).
  - ``discovery.run`` (discovery queue): every discovery job (beat, every 5 minutes, and the
    on-commit wake).
  - ``discovery.refresh`` (discovery queue): the discovery jobs of a scheduled refresh.

  A discovery job also carries a topic (DiscoveryTopic): *why* it was queued (a sign-up,
  an interests change, a refresh). Two of those are event topics too, so as worker topics
  they name the events; ``discovery.run`` works the discovery jobs whatever their reason.
- **Who publishes what.** An event is for a reaction to something discovery does not write
  itself: a sign-up (auth creates the User; its post_save publishes ``discovery.user-signup``
  in the same transaction, see discovery.hooks_events) or an interests change made outside
  discovery (an import, another app). Discovery's own write, ``user_interests_set``, queues
  the jobs directly in its transaction (DESIGN.md: the work row commits with the business
  data) rather than publishing ``discovery.interests-changed``: going through an event
  would add a second hop (and a second worker pass) before discovery starts, for the same
  outcome. Both paths end in ``discovery_enqueue_for_user``.
- An event is handled in its ack's transaction: the jobs it queues commit with its ``done``
  or not at all, and a handler that raises leaves the event to be retried with backoff and,
  out of attempts, dead-lettered (requeued from the ops dead letters like any row).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from discovery.models import DiscoveryEvent, DiscoveryTopic
from discovery.queue import discovery_queue, events_queue
from ops.queue import Lease
from ops.services import queue_item_enqueue
from ops.topics import TopicPermanentError, UnknownTopic, topic_get, topic_register

# Event topics (the topic of a DiscoveryEvent row).
USER_SIGNUP = DiscoveryTopic.USER_SIGNUP.value
INTERESTS_CHANGED = DiscoveryTopic.INTERESTS_CHANGED.value
# Worker topics that name a whole queue, or one kind of discovery job.
EVENTS_ALL = "discovery.events"
JOBS_ALL = "discovery.run"
JOBS_REFRESH = DiscoveryTopic.REFRESH.value

EventHandler = Callable[..., object]  # handler(*, event: DiscoveryEvent) -> anything

_EVENT_TOPICS: set[str] = set()


def event_topic_register(*, topic: str, handler: EventHandler, description: str = "") -> None:
    """Make ``topic`` an event topic: events published with it are handled by
    ``handler(event=...)``, in the transaction that acks the event."""
    topic_register(
        name=topic,
        queue=events_queue,
        handle=functools.partial(_event_handle, handler=handler),
        where={"topic": topic},
        description=description,
    )
    _EVENT_TOPICS.add(topic)


def event_topics() -> list[str]:
    return sorted(_EVENT_TOPICS)


def event_publish(*, topic: str, payload: Mapping[str, Any] | None = None, user: User | None = None) -> DiscoveryEvent:
    """Queue an event in the caller's transaction (or its own, outside one); a worker is
    woken once it commits. ``UnknownTopic`` for a topic no handler is registered for:
    nothing is written then, so an event never waits for a handler that does not exist."""
    if topic not in _EVENT_TOPICS:
        raise UnknownTopic(topic)
    with transaction.atomic():
        event = DiscoveryEvent.objects.create(topic=topic, payload=dict(payload or {}), user=user)
        queue_item_enqueue(queue=events_queue, item_id=event.pk, event="publish")
    return event


def _event_handle(*, lease: Lease, handler: EventHandler) -> None:
    """Run the event's handler inside the transaction that acks it."""
    event = DiscoveryEvent.objects.select_related("user").get(pk=lease.id)

    def handle() -> None:
        handler(event=event)

    events_queue.ack(lease=lease, on_ack=handle)


def event_dispatch(*, lease: Lease) -> None:
    """Handle a leased event by its own topic's handler (the ``discovery.events`` topic)."""
    topic = DiscoveryEvent.objects.filter(pk=lease.id).values_list("topic", flat=True).first()
    if topic not in _EVENT_TOPICS:
        raise TopicPermanentError(f"no handler is registered for the event topic {topic!r}")
    topic_get(str(topic)).handle(lease=lease)


def _member(event: DiscoveryEvent) -> User:
    if event.user is None:
        raise TopicPermanentError(f"a {event.topic} event needs a member")
    return event.user


def user_signup_handle(*, event: DiscoveryEvent) -> list[int]:
    """A member signed up: queue discovery for the interests they have (usually none yet,
    unless sign-up set some; then each gets its job now, not at the next change)."""
    from discovery.services import discovery_enqueue_for_user

    return discovery_enqueue_for_user(user=_member(event), topic=DiscoveryTopic.USER_SIGNUP)


def interests_changed_handle(*, event: DiscoveryEvent) -> list[int]:
    """A member's interests changed outside discovery: queue discovery for the interests in
    ``payload["interest_ids"]`` (a list of ids), or for all of theirs when it is absent."""
    from discovery.services import discovery_enqueue_for_user

    ids = event.payload.get("interest_ids") if isinstance(event.payload, dict) else None
    if ids is not None and (
        not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise TopicPermanentError("payload.interest_ids must be a list of interest ids")
    return discovery_enqueue_for_user(user=_member(event), topic=DiscoveryTopic.INTERESTS_CHANGED, interest_ids=ids)


def discovery_job_handle(*, lease: Lease) -> None:
    """Process one leased discovery job (it acks itself, with what it found)."""
    from discovery import services

    services.discovery_job_process(lease=lease)


def topics_register() -> None:
    """Register discovery's worker topics (called once, when the app is ready)."""
    event_topic_register(
        topic=USER_SIGNUP, handler=user_signup_handle, description="A member signed up: queue their discovery."
    )
    event_topic_register(
        topic=INTERESTS_CHANGED,
        handler=interests_changed_handle,
        description="A member's interests changed elsewhere: queue discovery for them.",
    )
    topic_register(
        name=EVENTS_ALL,
        queue=events_queue,
        handle=event_dispatch,
        description="Every discovery event, each by its own topic's handler.",
    )
    topic_register(
        name=JOBS_ALL,
        queue=discovery_queue,
        handle=discovery_job_handle,
        description="Every discovery job: find a member's candidates for an interest, record gaps.",
    )
    topic_register(
        name=JOBS_REFRESH,
        queue=discovery_queue,
        handle=discovery_job_handle,
        where={"topic": JOBS_REFRESH},
        description="The discovery jobs of a scheduled refresh.",
    )
