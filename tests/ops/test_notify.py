"""Alert delivery (ops/notify.py): invariant transitions alert once, deliveries are retried,
and the caller never waits for a receiver or a broker.

The receiver is a real HTTP server on 127.0.0.1. Most tests stand in for the broker with
``inline_worker`` (the task runs at once in the sending thread, as a worker would run it);
the slow test at the end sends through Redis to a real Celery worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from django.core import mail
from django.db import transaction
from django.db.models.functions import Now

from ops import invariants
from ops.invariants import Invariant, InvariantOutcome
from ops.models import InvariantResult
from ops.notify import (
    INVARIANT_RESULTS_LOCK_KEY,
    AlertDeliveryFailed,
    alert_channel_deliver,
    alert_deliver_here,
    alert_message_build,
    alert_send,
    alert_threads_join,
    invariant_results_store,
    invariant_transition_decide,
)
from ops.tasks import alert_deliver, invariants_check
from tests.support.broker import celery_pools_reset
from tests.support.concurrency import Worker, wait_until_blocked
from tests.support.servers import celery_worker_process, child_database_url, child_redis_url, free_port

# --- a webhook receiver ------------------------------------------------------------------------


class Receiver:
    """Answers each POST with the next status of ``script`` (200 once it runs out) and keeps
    what it got: ``posts`` is every (status answered, JSON body)."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.posts: list[tuple[int, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.posts.append((status, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies answered with a 2xx: the messages that got through."""
        with self.lock:
            return [body for status, body in self.posts if 200 <= status < 300]

    def statuses(self) -> list[int]:
        with self.lock:
            return [status for status, _ in self.posts]


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    settings.OPS_ALERT_WEBHOOK_URL = r.url
    settings.OPS_ALERT_EMAILS = []
    settings.OPS_ALERT_RETRY_BACKOFF_SECONDS = 0.0
    settings.OPS_ALERT_TIMEOUT_SECONDS = 5.0
    try:
        yield r
    finally:
        alert_threads_join(timeout=30)
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def inline_worker(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The broker and the worker, in the sending thread: each published task runs at once, as
    a worker runs it, retried as Celery would retry it (no sleeping: the backoff is 0 in
    these tests). Returns the published kwargs."""
    published: list[dict[str, Any]] = []

    def apply_async(kwargs: dict[str, Any], **options: Any) -> None:
        published.append(kwargs)
        for _ in range(1 + 5):
            try:
                alert_deliver.run(**kwargs)
                return
            except AlertDeliveryFailed:
                continue

    monkeypatch.setattr(alert_deliver, "apply_async", apply_async)
    return published


def sent() -> None:
    """Until every alert this process is sending has left."""
    assert alert_threads_join(timeout=30), "an alert was still being sent after 30 s"


# --- an invariant whose state the test sets --------------------------------------------------


class Flappy:
    name = "t.flappy"

    def __init__(self) -> None:
        self.rows: list[str] = []

    def fail(self) -> None:
        self.rows = ["run 7 stuck"]

    def recover(self) -> None:
        self.rows = []


@pytest.fixture
def flappy(monkeypatch: pytest.MonkeyPatch) -> Flappy:
    """The only registered invariant, a rows check failing at critical while ``rows``."""
    f = Flappy()
    inv = Invariant(name=f.name, app="t", description="Runs must not get stuck.", kind="rows", check=lambda: f.rows)
    monkeypatch.setattr(invariants, "_REGISTRY", {f.name: inv})
    return f


def check_run() -> dict[str, str]:
    """What beat runs, then until its alerts have left."""
    states = invariants_check.run()
    sent()
    return states


# --- transitions ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_invariant_alerts_once_when_it_goes_critical_never_while_it_stays_so_and_once_when_it_recovers(
    receiver, inline_worker, flappy
):
    assert check_run() == {flappy.name: "ok"}
    assert receiver.posts == []

    flappy.fail()
    assert check_run() == {flappy.name: "critical"}
    (bad,) = receiver.delivered()
    assert bad["alert"]["key"] == "invariant:t.flappy"
    assert bad["alert"]["state"] == "critical"
    assert "ok -> critical" in bad["text"]
    assert "run 7 stuck" in bad["text"]
    assert bad["alert"]["fields"]["to"] == "critical"

    check_run()
    check_run()
    assert len(receiver.posts) == 1, "an invariant that stays critical must not alert again"

    flappy.recover()
    check_run()
    assert len(receiver.posts) == 2
    recovered = receiver.delivered()[1]
    assert recovered["alert"]["state"] == "recovered"
    assert "critical -> ok" in recovered["text"]

    check_run()
    assert len(receiver.posts) == 2
    assert InvariantResult.objects.filter(name=flappy.name).count() == 6
    assert [k["channel"] for k in inline_worker] == ["webhook", "webhook"]


@pytest.mark.parametrize(
    ("old", "new", "transition"),
    [
        (None, "ok", None),
        (None, "critical", "bad"),  # a first result that is bad is news
        ("ok", "warn", "bad"),
        ("insufficient_data", "error", "bad"),
        ("warn", "critical", "worse"),
        ("warn", "error", "worse"),
        ("critical", "warn", None),  # less bad is still bad: no new alert
        ("critical", "critical", None),
        ("critical", "insufficient_data", None),  # not enough data is no recovery
        ("warn", "insufficient_data", None),
        ("warn", "ok", "recovered"),
        ("ok", "insufficient_data", None),
        (None, "insufficient_data", None),
    ],
)
def test_which_changes_of_state_alert(old, new, transition):
    assert invariant_transition_decide(old_state=old, new_state=new) == transition


@pytest.mark.django_db(transaction=True)
def test_an_invariant_that_gets_worse_alerts_once_more(receiver, inline_worker, flappy, monkeypatch):
    flappy.fail()
    for level in ("warn", "warn", "critical", "critical", "warn"):
        monkeypatch.setitem(
            invariants._REGISTRY,
            flappy.name,
            Invariant(name=flappy.name, app="t", description="d", kind="rows", check=lambda: flappy.rows, level=level),
        )
        check_run()
    assert [body["alert"]["state"] for body in receiver.delivered()] == ["warn", "critical"]


@pytest.mark.django_db(transaction=True)
def test_two_runs_storing_at_once_alert_a_transition_once(receiver, inline_worker, flappy):
    check_run()
    flappy.fail()
    # Hold the writers' lock on a connection of our own, so that both runs have evaluated
    # the invariant (critical) and wait to store it at the same moment.
    holder = psycopg.connect(child_database_url().replace("postgres://", "postgresql://", 1))
    try:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [INVARIANT_RESULTS_LOCK_KEY])
        runs = [Worker(invariants_check.run) for _ in range(2)]
        for run in runs:
            run.start()
            run.ready.wait(timeout=30)
        for run in runs:
            run.go.set()
        for run in runs:
            wait_until_blocked(run.pid)
        holder.commit()
    finally:
        holder.close()
    for run in runs:
        run.join(timeout=30)
        assert run.error is None, run.error
    sent()

    assert InvariantResult.objects.filter(name=flappy.name, state="critical").count() == 2
    assert [body["alert"]["state"] for body in receiver.delivered()] == ["critical"]


@pytest.mark.django_db
def test_a_run_compares_with_the_result_written_last_even_when_its_timestamp_is_older():
    # Two overlapping writers: the one that started first (older checked_at) wrote last.
    first = InvariantResult.objects.create(name="t.x", app="t", state="critical")
    last = InvariantResult.objects.create(name="t.x", app="t", state="ok")
    InvariantResult.objects.filter(pk=first.pk).update(checked_at=Now())
    InvariantResult.objects.filter(pk=last.pk).update(checked_at=Now() - timedelta(seconds=1))
    ok = InvariantOutcome(name="t.x", app="t", description="d", state="ok", value=0.0, detail="", seconds=0.0)
    assert invariant_results_store(outcomes=[ok]) == []
    critical = InvariantOutcome(name="t.x", app="t", description="d", state="critical", value=1, detail="", seconds=0)
    (transition,) = invariant_results_store(outcomes=[critical])
    assert (transition.old_state, transition.new_state, transition.transition) == ("ok", "critical", "bad")


def _outcome(state: str) -> InvariantOutcome:
    return InvariantOutcome(name="t.flap", app="t", description="d", state=state, value=None, detail="", seconds=0.0)


@pytest.mark.django_db
def test_flapping_between_a_bad_state_and_not_enough_data_alerts_once_and_recovers_once():
    states = ["ok", "critical", "insufficient_data", "critical", "insufficient_data", "critical", "insufficient_data"]
    states += ["critical", "insufficient_data", "ok", "insufficient_data", "ok"]
    transitions = []
    for state in states:
        transitions += [
            (t.old_state, t.new_state, t.transition) for t in invariant_results_store(outcomes=[_outcome(state)])
        ]
    assert transitions == [
        ("ok", "critical", "bad"),
        ("critical", "ok", "recovered"),  # compared with the last result that had data
    ]
    assert InvariantResult.objects.filter(name="t.flap").count() == len(states)


@pytest.mark.django_db
def test_a_result_after_only_not_enough_data_is_compared_with_nothing_known():
    for state in ("insufficient_data", "insufficient_data"):
        assert invariant_results_store(outcomes=[_outcome(state)]) == []
    (transition,) = invariant_results_store(outcomes=[_outcome("error")])
    assert (transition.old_state, transition.transition) == ("insufficient_data", "bad")
    assert invariant_results_store(outcomes=[_outcome("ok")])[0].transition == "recovered"


# --- sending and delivering ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_alert_leaves_only_when_its_transaction_commits_and_rollbacks_always_alert(receiver, inline_worker):
    with pytest.raises(RuntimeError), transaction.atomic():
        alert_send(key="rollout:7", state="rolled_back", title="Rollout 7 rolled back", text="p95 breached", fields={})
        raise RuntimeError("the rollback's own transaction failed")
    sent()
    assert receiver.posts == []

    for before in range(2):
        with transaction.atomic():
            alert_send(
                key="rollout:7",
                state="rolled_back",
                title="Rollout 7 rolled back",
                text="p95 breached",
                fields={"stage": 2, "percent": 25.0},
            )
            sent()
            assert len(receiver.posts) == before, "nothing may leave before the commit"
        sent()
    bodies = receiver.delivered()
    assert len(bodies) == 2, "alert_send never deduplicates: every rollback is a message"
    assert bodies[0]["text"].endswith("*Rollout 7 rolled back*\np95 breached")
    assert bodies[0]["alert"]["fields"] == {"stage": 2, "percent": 25.0}
    assert {"title": "stage", "value": "2", "short": True} in bodies[0]["attachments"][0]["fields"]


def test_with_no_channel_configured_an_alert_is_only_logged(settings, inline_worker, caplog):
    settings.OPS_ALERT_WEBHOOK_URL = ""
    settings.OPS_ALERT_EMAILS = []
    alert_send(key="rollout:1", state="rolled_back", title="Rolled back", text="why", fields={})
    sent()
    assert inline_worker == []
    assert "alert rollout:1 [rolled_back] Rolled back: why" in caplog.text


def test_a_receiver_failing_twice_gets_the_message_once_on_the_third_attempt(receiver):
    receiver.script = [500, 503]
    message = alert_message_build(key="invariant:x", state="critical", title="x", text="y")
    failures = 0
    for _ in range(6):  # what the worker does on each retry Celery schedules
        try:
            alert_deliver.run(channel="webhook", message=message)
            break
        except AlertDeliveryFailed:
            failures += 1
    assert failures == 2
    assert receiver.statuses() == [500, 503, 200]
    assert len(receiver.delivered()) == 1


def test_a_refused_message_is_not_retried(receiver):
    receiver.script = [400]
    message = alert_message_build(key="invariant:x", state="critical", title="x", text="y")
    alert_deliver.run(channel="webhook", message=message)  # logged, not raised: no retry
    assert receiver.statuses() == [400]


def test_delivering_without_a_broker_retries_up_to_the_limit(receiver, settings):
    settings.OPS_ALERT_MAX_RETRIES = 2
    receiver.script = [500, 500, 500, 500]
    message = alert_message_build(key="invariant:x", state="critical", title="x", text="y")
    assert alert_deliver_here(channel="webhook", message=message) is False
    assert receiver.statuses() == [500, 500, 500]
    receiver.script = [502]
    assert alert_deliver_here(channel="webhook", message=message) is True
    assert receiver.statuses()[3:] == [502, 200]


class Hanging:
    """A webhook that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)

    def close(self) -> None:
        # shutdown() first: a close() alone leaves the thread blocked in accept() listening.
        for sock in [self.sock, *self.accepted]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def dead_broker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's Celery app sending to a port where nothing listens.

    Celery reads the broker from the environment before its configuration
    (``CELERY_BROKER_WRITE_URL``, then ``CELERY_BROKER_URL``, then ``broker_url``), and
    ``make test`` sets ``CELERY_BROKER_URL``: all three are pointed at the dead port, and the
    connection pools the producer draws from are dropped so that they are rebuilt from it."""
    from matchplatform.celery import app

    port = free_port()
    dead = f"redis://127.0.0.1:{port}/0"
    saved = app.conf.broker_url
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    app.conf.broker_url = dead
    celery_pools_reset(app)
    # What alert_deliver.apply_async publishes through: the producer pool's connection.
    connection = app.amqp.producer_pool.connections.connection
    assert (connection.hostname, connection.port) == ("127.0.0.1", port), (
        f"the producer still publishes to {connection.as_uri()}, not to the dead broker"
    )
    try:
        yield dead
    finally:
        # monkeypatch restores the environment after this; the pools are rebuilt lazily.
        app.conf.broker_url = saved
        celery_pools_reset(app)


def test_a_dead_webhook_behind_a_dead_broker_never_holds_or_fails_the_caller(settings, dead_broker):
    hanging = Hanging()
    settings.OPS_ALERT_WEBHOOK_URL = hanging.url
    settings.OPS_ALERT_EMAILS = []
    settings.OPS_ALERT_TIMEOUT_SECONDS = 60.0
    settings.OPS_ALERT_MAX_RETRIES = 1
    settings.OPS_ALERT_RETRY_BACKOFF_SECONDS = 0.0
    try:
        started = time.monotonic()
        alert_send(key="rollout:3", state="rolled_back", title="Rolled back", text="error rate", fields={})
        returned = time.monotonic() - started
        # The broker refused the task, so this process delivers it itself: to a webhook that
        # will not answer for a minute. The caller had long returned.
        deadline = time.monotonic() + 60
        while not hanging.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hanging.accepted, "the alert never reached the webhook when the broker was down"
        assert returned < 1.0, f"alert_send held its caller {returned:.1f} s"
        assert not alert_threads_join(timeout=0.2), "the delivery should still be waiting on the webhook"
    finally:
        hanging.close()
    # The webhook's connection drops: the retry finds nobody listening, and the thread gives up.
    assert alert_threads_join(timeout=30)


def test_alert_email_goes_to_every_address_through_django_mail(settings, inline_worker):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OPS_ALERT_WEBHOOK_URL = ""
    settings.OPS_ALERT_EMAILS = ["ops@example.com", "oncall@example.com"]
    settings.OPS_ALERT_EMAIL_FROM = "alerts@example.com"
    mail.outbox.clear()
    alert_send(
        key="rollout:9", state="rolled_back", title="Rollout 9 rolled back", text="gate failed", fields={"stage": 3}
    )
    sent()
    (email,) = mail.outbox
    assert email.to == ["ops@example.com", "oncall@example.com"]
    assert email.from_email == "alerts@example.com"
    assert email.subject == "[matchplatform] ROLLED_BACK: Rollout 9 rolled back"
    assert "gate failed" in email.body
    assert "stage: 3" in email.body
    assert "key: rollout:9" in email.body


def test_each_channel_is_its_own_task_so_a_retried_email_does_not_repost_the_webhook(receiver, settings, inline_worker):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OPS_ALERT_EMAILS = ["ops@example.com"]
    mail.outbox.clear()
    alert_send(key="k", state="critical", title="t", text="x", fields={})
    sent()
    assert [k["channel"] for k in inline_worker] == ["webhook", "email"]
    assert len(receiver.delivered()) == 1
    assert len(mail.outbox) == 1


def test_a_mail_server_that_is_down_is_a_failure_worth_retrying(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()
    settings.EMAIL_TIMEOUT = 5
    settings.OPS_ALERT_EMAILS = ["ops@example.com"]
    message = alert_message_build(key="k", state="critical", title="t", text="x")
    with pytest.raises(AlertDeliveryFailed):
        alert_channel_deliver(channel="email", message=message)


def test_an_unreachable_webhook_is_a_failure_worth_retrying(settings):
    settings.OPS_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/hook"
    message = alert_message_build(key="k", state="critical", title="t", text="x")
    with pytest.raises(AlertDeliveryFailed):
        alert_deliver.run(channel="webhook", message=message)


# --- through Redis, to a real worker -----------------------------------------------------------


@pytest.fixture
def redis_broker(settings: Any) -> Iterator[None]:
    """The test configuration's Redis database, empty, and this process's app sending to it."""
    import redis

    from matchplatform.celery import app

    url = child_redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    client.flushdb()

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.broker_url = url
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    celery_pools_reset(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        celery_pools_reset(app)
        client.flushdb()
        client.close()


def _wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_retries_a_failing_webhook_until_it_takes_the_message_once(receiver, redis_broker, settings, tmp_path):
    receiver.script = [500, 500]
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_TASK_ALWAYS_EAGER",)}
    env.update(
        DJANGO_SETTINGS_MODULE="matchplatform.settings",
        DATABASE_URL=child_database_url(),
        CELERY_BROKER_URL=child_redis_url(),
        OPS_ALERT_WEBHOOK_URL=receiver.url,
        OPS_ALERT_EMAILS="",
        OPS_ALERT_RETRY_BACKOFF_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "worker.log"
    with celery_worker_process(env=env, name="alerts", log=log):
        alert_send(key="rollout:5", state="rolled_back", title="Rollout 5 rolled back", text="5xx rate", fields={})
        sent()  # on the broker now; the caller is done
        try:
            _wait_for(lambda: len(receiver.posts) >= 3, timeout=90, what="the third attempt")
            time.sleep(1.0)  # room for a wrong fourth post
        except AssertionError:
            print(log.read_text(errors="replace"))
            raise
        assert receiver.statuses() == [500, 500, 200]
        (body,) = receiver.delivered()
        assert body["alert"]["key"] == "rollout:5"
