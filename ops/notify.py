"""Alert delivery: a webhook taking Slack-compatible JSON, and email, from the environment.

Sending an alert
    ``alert_send(key=..., state=..., title=..., text=..., fields={...})`` is the one call.
    It never raises and never waits on the network: once the caller's transaction commits
    (at once outside one), a short-lived background thread sends one ``ops.alert_deliver``
    task per configured channel to the broker, and a worker delivers it, retrying a failure
    with exponential backoff (``OPS_ALERT_MAX_RETRIES``, ``OPS_ALERT_RETRY_BACKOFF_SECONDS``).
    A broker that cannot take the task does not lose the alert: that thread delivers it
    itself, with the same retries. A rolled-back transaction sends nothing. With no channel
    configured (``OPS_ALERT_WEBHOOK_URL``, ``OPS_ALERT_EMAILS``) alerts are only logged.

    ``alert_send`` does not deduplicate: every call is a message. Callers whose state stays
    bad over many checks decide when to speak; invariants do it here, below. A rollout
    rolled back always speaks::

        alert_send(
            key=f"rollout:{rollout.id}",
            state="rolled_back",
            title=f"Rollout {rollout.name} rolled back",
            text=reason,
            fields={"flag": rollout.flag, "stage": stage, "percent": percent},
        )

    ``key`` names what the alert is about (``invariant:<name>``, ``rollout:<id>``) so a
    receiver can thread or group messages; ``state`` is what it is now (an invariant state,
    ``recovered``, ``rolled_back``...); ``fields`` are short name/value pairs shown as such.
    Delivery is at least once: a worker that dies after posting and before acknowledging
    the task posts again.

Invariants
    ``invariant_results_store`` writes a run's results and, in the same transaction, under
    a lock that serializes writers, compares each with the previous stored result of the
    same invariant: an invariant that goes bad (from ok, or from no result, to warn, error
    or critical) alerts once, one that gets worse (warn to critical) alerts once more, one
    that recovers (to ok) alerts once; staying bad, or getting less bad, says nothing.
    Not enough data is no news either way: it is neither a recovery nor a new bad state,
    and a result that follows it is compared with the last result that had data, so an
    invariant flapping between critical and not-enough-data alerts once, not at every flip.
    Two beat processes (or beat and ``doctor --store``) storing at once decide each
    transition once.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ops.invariants import InvariantOutcome
from ops.models import InvariantResult, InvariantState

logger = logging.getLogger(__name__)

CHANNEL_WEBHOOK = "webhook"
CHANNEL_EMAIL = "email"
CHANNELS = (CHANNEL_WEBHOOK, CHANNEL_EMAIL)

STATE_RECOVERED = "recovered"
STATE_ROLLED_BACK = "rolled_back"

# How bad each invariant state is; 0 is good (not enough data counts as ok, as in health and
# on /metrics; for alerting it is no change at all: see invariant_transition_decide).
_SEVERITY = {
    InvariantState.OK: 0,
    InvariantState.INSUFFICIENT_DATA: 0,
    InvariantState.WARN: 1,
    InvariantState.ERROR: 2,
    InvariantState.CRITICAL: 3,
}
_ICONS = {
    InvariantState.WARN: ":warning:",
    InvariantState.ERROR: ":x:",
    InvariantState.CRITICAL: ":red_circle:",
    STATE_RECOVERED: ":white_check_mark:",
    InvariantState.OK: ":white_check_mark:",
    STATE_ROLLED_BACK: ":rewind:",
}
_COLOURS = {
    InvariantState.WARN: "warning",
    InvariantState.ERROR: "danger",
    InvariantState.CRITICAL: "danger",
    STATE_RECOVERED: "good",
    InvariantState.OK: "good",
    STATE_ROLLED_BACK: "warning",
}


class AlertDeliveryFailed(Exception):
    """A delivery that may succeed later (a timeout, a refused connection, a 5xx, a 429)."""


class AlertRejected(Exception):
    """A delivery the receiver refused for good (a 4xx other than 408 and 429): retrying
    would send the same refused message again."""


# --- sending -------------------------------------------------------------------------------


def alert_channels() -> list[str]:
    """The channels configured now, in delivery order."""
    channels = []
    if settings.OPS_ALERT_WEBHOOK_URL:
        channels.append(CHANNEL_WEBHOOK)
    if settings.OPS_ALERT_EMAILS:
        channels.append(CHANNEL_EMAIL)
    return channels


def _json_value(value: Any) -> str | int | float | bool | None:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def alert_message_build(
    *, key: str, state: str, title: str, text: str, fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The message as it travels in the task: plain JSON."""
    return {
        "key": str(key),
        "state": str(state),
        "title": str(title),
        "text": str(text),
        "fields": {str(name): _json_value(value) for name, value in (fields or {}).items()},
        "created_at": timezone.now().isoformat(),
    }


def alert_send(*, key: str, state: str, title: str, text: str, fields: Mapping[str, Any] | None = None) -> None:
    """Send one alert to every configured channel once the caller's transaction commits.

    Never raises and never waits: the message leaves from a background thread, which hands it
    to the ``ops.alert_deliver`` task (retried with backoff) or, when the broker cannot take
    it, delivers it itself. See the module's docstring for the meaning of each argument."""
    try:
        message = alert_message_build(key=key, state=state, title=title, text=text, fields=fields)
        level = logging.INFO if state in (InvariantState.OK, STATE_RECOVERED) else logging.WARNING
        logger.log(level, "alert %s [%s] %s: %s", message["key"], message["state"], message["title"], message["text"])
        channels = alert_channels()
        if not channels:
            return
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(lambda: alert_dispatch_start(message=message, channels=channels), robust=True)
        else:
            # Nothing to wait for, and no need to reach the database (it may be what is down).
            alert_dispatch_start(message=message, channels=channels)
    except Exception:
        logger.exception("could not send the alert %s", key)


_threads_lock = threading.Lock()
_threads: set[threading.Thread] = set()


def alert_dispatch_start(*, message: dict[str, Any], channels: Sequence[str]) -> threading.Thread:
    """Run ``alert_dispatch`` in a daemon thread: publishing to a broker that is down takes
    seconds (connection retries), a blackholed one as long as its connect timeout."""

    def run() -> None:
        try:
            alert_dispatch(message=message, channels=channels)
        finally:
            with _threads_lock:
                _threads.discard(threading.current_thread())

    thread = threading.Thread(target=run, name="ops-alert", daemon=True)
    with _threads_lock:
        _threads.add(thread)
    thread.start()
    return thread


def alert_threads_join(*, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the alerts this process is still sending; True when
    none is left. A short-lived process (a management command) calls it before it exits."""
    deadline = time.monotonic() + timeout
    while True:
        with _threads_lock:
            pending = list(_threads)
        if not pending:
            return True
        for thread in pending:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            with _threads_lock:
                return not _threads


def alert_dispatch(*, message: dict[str, Any], channels: Sequence[str]) -> None:
    """Hand the message to the broker, one task per channel (so that a webhook delivered is
    not posted again while the email is retried); when the broker cannot take a task,
    deliver it here, with the task's retries and backoff. Never raises."""
    from ops.tasks import alert_deliver

    for channel in channels:
        try:
            # retry=False: one attempt at publishing, then the fallback below.
            alert_deliver.apply_async(kwargs={"channel": channel, "message": message}, retry=False)
        except Exception:
            logger.warning("could not queue the %s alert %s; delivering it from this process", channel, message["key"])
            alert_deliver_here(channel=channel, message=message)


def alert_retry_countdown(*, retries: int) -> float:
    """Seconds before retry number ``retries + 1``: full jitter over an exponential bound."""
    base = float(settings.OPS_ALERT_RETRY_BACKOFF_SECONDS)
    bound = min(float(settings.OPS_ALERT_RETRY_BACKOFF_MAX_SECONDS), base * (2**retries))
    return random.uniform(0, bound) if bound > 0 else 0.0


def alert_deliver_here(*, channel: str, message: dict[str, Any]) -> bool:
    """Deliver now, in this thread, with the task's retries and backoff (the fallback for a
    broker that is down: a process that exits meanwhile loses the alert). True when
    delivered; never raises."""
    attempts = int(settings.OPS_ALERT_MAX_RETRIES) + 1
    for attempt in range(attempts):
        try:
            alert_channel_deliver(channel=channel, message=message)
            return True
        except AlertDeliveryFailed as exc:
            if attempt + 1 == attempts:
                logger.error("gave up on the %s alert %s: %s", channel, message.get("key"), exc)
                return False
            time.sleep(alert_retry_countdown(retries=attempt))
        except Exception:
            logger.exception("the %s alert %s was not delivered", channel, message.get("key"))
            return False
    return False


# --- delivering ------------------------------------------------------------------------------


def alert_channel_deliver(*, channel: str, message: dict[str, Any]) -> None:
    """Deliver the message to one channel now. Raises ``AlertDeliveryFailed`` when a retry
    may succeed, ``AlertRejected`` when it would not; a channel no longer configured is
    skipped."""
    if channel == CHANNEL_WEBHOOK:
        url = settings.OPS_ALERT_WEBHOOK_URL
        if url:
            webhook_post(url=url, payload=webhook_payload(message))
    elif channel == CHANNEL_EMAIL:
        recipients = list(settings.OPS_ALERT_EMAILS)
        if recipients:
            alert_email_send(message=message, recipients=recipients)
    else:
        raise AlertRejected(f"unknown alert channel {channel!r}")


def _headline(message: Mapping[str, Any]) -> str:
    return f"{message['title']} ({message['state']})"


def webhook_payload(message: Mapping[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (what every compatible receiver shows) and an
    attachment with the fields; ``alert`` repeats the message for receivers that are programs."""
    state = message["state"]
    icon = _ICONS.get(state, ":information_source:")
    fields = message.get("fields") or {}
    return {
        "text": f"{icon} *{message['title']}*\n{message['text']}".rstrip(),
        "attachments": [
            {
                "color": _COLOURS.get(state, "#439FE0"),
                "fallback": _headline(message),
                "fields": [{"title": name, "value": str(value), "short": True} for name, value in fields.items()],
                "footer": f"{message['key']} · {state}",
            }
        ],
        "alert": {name: message.get(name) for name in ("key", "state", "title", "text", "fields", "created_at")},
    }


def webhook_post(*, url: str, payload: dict[str, Any]) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise AlertRejected("OPS_ALERT_WEBHOOK_URL must be an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "matchplatform-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.OPS_ALERT_TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read(4096)
    except urllib.error.HTTPError as exc:
        if exc.code in (408, 429) or exc.code >= 500:
            raise AlertDeliveryFailed(f"webhook answered {exc.code}") from exc
        raise AlertRejected(f"webhook refused the alert with {exc.code}") from exc
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused and reset connections
        raise AlertDeliveryFailed(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc


def alert_email_send(*, message: Mapping[str, Any], recipients: list[str]) -> None:
    fields = message.get("fields") or {}
    body = "\n".join(
        [
            str(message["text"]),
            "",
            *(f"{name}: {value}" for name, value in fields.items()),
            "",
            f"key: {message['key']}",
            f"state: {message['state']}",
            f"at: {message.get('created_at', '')}",
        ]
    )
    subject = f"[matchplatform] {str(message['state']).upper()}: {message['title']}"
    try:
        send_mail(
            subject=subject.replace("\n", " ")[:200],
            message=body,
            from_email=settings.OPS_ALERT_EMAIL_FROM or settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
            fail_silently=False,
        )
    except OSError as exc:  # smtplib's errors are OSErrors, as are refused connections
        raise AlertDeliveryFailed(f"email not sent: {type(exc).__name__}: {exc}") from exc


# --- invariants --------------------------------------------------------------------------------


def invariant_severity(state: str | None) -> int:
    """0 for ok, not enough data, or no previous result; 1 warn, 2 error, 3 critical."""
    if state is None:
        return 0
    try:
        return _SEVERITY[InvariantState(state)]
    except ValueError:
        return 0


TRANSITION_BAD = "bad"
TRANSITION_WORSE = "worse"
TRANSITION_RECOVERED = "recovered"


def invariant_transition_decide(*, old_state: str | None, new_state: str) -> str | None:
    """Which alert a change of state calls for: ``bad`` (good to bad), ``worse`` (a bad state
    to a worse one), ``recovered`` (bad to ok), or None (no change, bad to less bad, good
    to good: nothing new to say). Not enough data says nothing: it is no recovery, and the
    next result with data is compared with the last one before it (``old_state``, as
    ``invariant_results_store`` passes it)."""
    if new_state == InvariantState.INSUFFICIENT_DATA:
        return None
    old, new = invariant_severity(old_state), invariant_severity(new_state)
    if old == 0 and new > 0:
        return TRANSITION_BAD
    if old > 0 and new == 0:
        return TRANSITION_RECOVERED
    if new > old > 0:
        return TRANSITION_WORSE
    return None


def invariant_transition_notify(
    *,
    name: str,
    old_state: str | None,
    new_state: str,
    detail: str = "",
    value: float | None = None,
    app: str = "",
    description: str = "",
) -> str | None:
    """Alert on this invariant's change of state when it calls for one (see
    ``invariant_transition_decide``); returns the transition, or None when nothing was sent.
    The caller decides that the change happened once (``invariant_results_store`` does)."""
    transition = invariant_transition_decide(old_state=old_state, new_state=new_state)
    if transition is None:
        return None
    was = old_state or "no result"
    if transition == TRANSITION_RECOVERED:
        title = f"Invariant {name} recovered"
        state = STATE_RECOVERED
    else:
        verb = "got worse" if transition == TRANSITION_WORSE else "is failing"
        title = f"Invariant {name} {verb}: {new_state}"
        state = new_state
    lines = [f"{name}: {was} -> {new_state}."]
    if description:
        lines.append(description)
    if detail:
        lines.append(detail)
    alert_send(
        key=f"invariant:{name}",
        state=state,
        title=title,
        text="\n".join(lines),
        fields={"invariant": name, "app": app, "from": was, "to": new_state, "value": value},
    )
    return transition


@dataclass(frozen=True)
class InvariantTransition:
    name: str
    old_state: str | None
    new_state: str
    transition: str


# A fixed key for PostgreSQL's advisory lock that serializes the writers of check results.
INVARIANT_RESULTS_LOCK_KEY = zlib.crc32(b"ops.invariant_results")


def _results_writers_serialize() -> None:
    # Row locks cannot serialize the writers: what each must see is the other's *new* row.
    # On SQLite every write transaction already starts IMMEDIATE (settings), holding the
    # database's write lock until it commits.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INVARIANT_RESULTS_LOCK_KEY])


def _last_written(results: QuerySet[InvariantResult]) -> str | None:
    # The row written last: the highest id (inserts are serialized here). checked_at is each
    # writer's transaction start, which two overlapping writers may invert, so the newest few
    # by checked_at (the index) are read and the last written kept.
    last = max(results.order_by("-checked_at", "-id")[:3].values_list("id", "state"), default=None)
    return None if last is None else str(last[1])


def _previous_state(name: str) -> str | None:
    """What a new result of invariant ``name`` is compared with: the last stored state that had
    data (not enough data is no change); not enough data when no stored result had any;
    None when there is no result at all."""
    results = InvariantResult.objects.filter(name=name)
    last = _last_written(results)
    if last != InvariantState.INSUFFICIENT_DATA:
        return last
    return _last_written(results.exclude(state=InvariantState.INSUFFICIENT_DATA)) or last


def invariant_results_store(*, outcomes: Sequence[InvariantOutcome]) -> list[InvariantTransition]:
    """Store a run's results and alert on each invariant whose state changed in a way that
    calls for it, compared with its previous stored result (the one written last, whoever
    wrote it, skipping results without enough data: see ``_previous_state``). Returns the
    transitions alerted on.

    Writers are serialized for the length of this short transaction (no check runs inside
    it), so of two runs storing at once the second compares with the first's results and a
    transition is announced once. Alerts leave after the commit."""
    transitions: list[InvariantTransition] = []
    with transaction.atomic(durable=True):
        _results_writers_serialize()
        previous = {outcome.name: _previous_state(outcome.name) for outcome in outcomes}
        InvariantResult.objects.bulk_create(
            [
                InvariantResult(name=o.name, app=o.app, state=o.state, value=o.value, sample=o.sample, detail=o.detail)
                for o in outcomes
            ]
        )
        for o in outcomes:
            transition = invariant_transition_notify(
                name=o.name,
                old_state=previous[o.name],
                new_state=o.state,
                detail=o.detail,
                value=o.value,
                app=o.app,
                description=o.description,
            )
            if transition is not None:
                transitions.append(
                    InvariantTransition(
                        name=o.name, old_state=previous[o.name], new_state=o.state, transition=transition
                    )
                )
    return transitions


__all__ = [
    "CHANNELS",
    "STATE_RECOVERED",
    "STATE_ROLLED_BACK",
    "AlertDeliveryFailed",
    "AlertRejected",
    "InvariantTransition",
    "alert_channel_deliver",
    "alert_channels",
    "alert_dispatch",
    "alert_dispatch_start",
    "alert_send",
    "alert_threads_join",
    "invariant_results_store",
    "invariant_transition_decide",
    "invariant_transition_notify",
]
