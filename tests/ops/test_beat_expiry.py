"""Beat tasks that must not run late: the rollouts' controller tick and prune go to the
broker with an expiry of one period, so a message that waited for a worker longer than that
is dropped instead of run (the next one beat sends does the work)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Exchange, Queue

from flags.rollouts.tasks import PRUNE_SECONDS, rollouts_prune_task, rollouts_tick_task
from matchplatform.celery import app


@pytest.fixture
def private_queue() -> Iterator[Queue]:
    """A queue of this test's own on the test broker, that no worker consumes."""
    queue = Queue(f"test-beat-expiry-{uuid.uuid4().hex[:12]}", Exchange("celery", type="direct"))
    queue.routing_key = queue.name
    with app.connection_for_write() as connection:
        queue(connection.default_channel).declare()
    yield queue
    with app.connection_for_write() as connection:
        queue(connection.default_channel).delete()


def _published_expiry(task, queue: Queue) -> tuple[datetime, datetime]:
    """Send ``task`` as beat does (apply_async with no option of its own, only routed to
    ``queue``); the time it was sent and the expiry its message carries."""
    sent = timezone.now()
    task.apply_async(exchange=queue.exchange, routing_key=queue.routing_key)
    message = None
    deadline = time.monotonic() + 5  # a broker may take a moment to hand it over
    with app.connection_for_read() as connection:
        while message is None and time.monotonic() < deadline:
            message = queue(connection.default_channel).get(no_ack=True)
            if message is None:
                time.sleep(0.05)
    assert message is not None, f"{task.name} never reached the queue"
    assert message.headers["task"] == task.name
    expires = message.headers.get("expires")
    assert expires, f"{task.name} is sent with no expiry: a backlog would run late"
    return sent, datetime.fromisoformat(expires)


def test_a_rollouts_tick_expires_after_one_tick_period(private_queue):
    period = float(settings.ROLLOUTS_TICK_SECONDS)
    sent, expires = _published_expiry(rollouts_tick_task, private_queue)
    assert sent + timedelta(seconds=period - 2) <= expires <= sent + timedelta(seconds=period + 2)
    assert rollouts_tick_task.acks_late, "a worker lost mid-tick hands the tick back"


def test_a_rollouts_prune_expires_after_its_hour(private_queue):
    assert settings.CELERY_BEAT_SCHEDULE["flags.rollouts_prune"]["schedule"] == PRUNE_SECONDS
    sent, expires = _published_expiry(rollouts_prune_task, private_queue)
    assert sent + timedelta(seconds=PRUNE_SECONDS - 2) <= expires <= sent + timedelta(seconds=PRUNE_SECONDS + 2)
    assert rollouts_prune_task.acks_late
