"""A flip made in the admin of a real web process reaches a real Celery worker process (and the
web process's own API) within 5 s: a flag's rule, and the ``global.safe_mode`` switch.

Both processes run on this test's database and the test configuration's Redis db, each in its
own process group, killed when the test ends. The worker is asked through the broker: a
``flags.evaluate`` task sent by a client app whose result comes back through the same Redis
db (the project itself ignores task results; the worker gets ``CELERY_RESULT_BACKEND`` only
here). Each check prints the measured seconds.
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from django.conf import settings
from django.contrib.auth import get_user_model
from waffle.models import Switch

from flags.models import Flag
from flags.names import SAFE_MODE
from flags.services import rollout_bucket
from ops.models import QueueHistory
from runs.models import MatchRunStatus
from runs.queue import runs_queue
from runs.services import match_run_submit
from tests.support.servers import celery_worker_process, child_database_url, child_redis_url, gunicorn_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
FLIP_LIMIT_S = 5.0  # the bound: a flip is seen everywhere within 5 s
WAIT_S = 15.0  # how long a check keeps looking before it gives up (past the bound, to print the time)
BOOT_S = 90.0  # a worker's start-up, on a loaded machine
PASSWORD = "pw-for-flip-tests"


# --- the worker -----------------------------------------------------------------------------
@dataclass
class Worker:
    client: Celery
    queue: str
    log: Path

    def evaluate(self, name: str, *, user_id: int | None = None, timeout: float = 5.0) -> bool:
        """``flags.evaluate`` as the worker process answers it."""
        result = self.client.send_task(
            "flags.evaluate", args=[name], kwargs={"user_id": user_id}, queue=self.queue, ignore_result=False
        )
        try:
            return bool(result.get(timeout=timeout))
        finally:
            result.forget()


@contextmanager
def celery_worker(tmp_path: Path) -> Iterator[Worker]:
    """A real ``celery worker`` (solo pool) on the test database and Redis db, consuming a queue
    of its own, killed (its whole process group) when the block ends."""
    redis_url = child_redis_url()
    queue = f"flags-flip-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "OPS_WAKE_WORKERS": "false",
        "MATCHPLATFORM_VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(name, None)
    log = tmp_path / "worker.log"
    client = Celery("flags-flip-test", broker=redis_url, backend=redis_url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    try:
        with celery_worker_process(env=env, name=queue, log=log, queue=queue):
            yield Worker(client=client, queue=queue, log=log)
    finally:
        client.close()


def worker_ready(worker: Worker, name: str) -> bool:
    """The worker's first answer (it waits for the worker to boot)."""
    try:
        return worker.evaluate(name, timeout=BOOT_S)
    except Exception as exc:
        raise AssertionError(f"the worker did not answer: {exc!r}\n{worker.log.read_text()[-4000:]}") from exc


# --- the admin, over HTTP ---------------------------------------------------------------------
class FormFields(HTMLParser):
    """The fields a browser would submit from the page's POST form with ``form_id``: inputs,
    checked boxes, selected options, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: tuple[str, bool] | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = a.get("name", "")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in {"submit", "button", "image", "reset", "file"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            self.fields.append((name, a.get("value", "on" if kind in {"checkbox", "radio"} else "")))
        elif tag == "select" and name:
            self._select, self._options = (name, "multiple" in a), []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select" and self._select is not None:
            name, multiple = self._select
            chosen = [value for value, selected in self._options if selected]
            if not chosen and not multiple and self._options:
                chosen = [self._options[0][0]]
            self.fields.extend((name, value) for value in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def admin_session(base: str, *, username: str) -> requests.Session:
    """A browser-like session signed in to the admin of the web process at ``base``."""
    session = requests.Session()
    page = session.get(f"{base}/admin/login/", timeout=10)
    assert page.status_code == 200, page.text[:2000]
    signed = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "username": username,
            "password": PASSWORD,
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
        timeout=10,
    )
    assert signed.status_code == 200 and signed.url.rstrip("/").endswith("/admin"), signed.text[:2000]
    return session


def admin_change(
    session: requests.Session,
    base: str,
    *,
    path: str,
    form_id: str,
    changes: dict[str, str],
    untick: tuple[str, ...] = (),
) -> None:
    """Open an admin change form, change some fields as a person would (an unticked box is
    simply not sent), and save it."""
    url = f"{base}{path}"
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text[:2000]
    parser = FormFields(form_id)
    parser.feed(page.text)
    assert parser.fields, f"no form #{form_id} on {path}"
    data = [(k, v) for k, v in parser.fields if k not in changes and k not in untick]
    data += [*changes.items(), ("_save", "Save")]
    saved = session.post(url, data=data, headers={"Referer": url}, timeout=10, allow_redirects=False)
    errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', saved.text, flags=re.S)
    errors = [" ".join(re.sub(r"<[^>]+>", " ", e).split()) for e in errors]
    assert saved.status_code == 302, (
        f"the admin did not save ({saved.status_code}): {errors or saved.text[-3000:]} (sent {data})"
    )


def api_flags(session: requests.Session, base: str) -> dict[str, bool]:
    response = session.get(f"{base}/api/flags", timeout=10)
    assert response.status_code == 200, response.text[:2000]
    flags: dict[str, bool] = response.json()
    return flags


def fetch_config(session: requests.Session, base: str) -> dict[str, Any]:
    """``runs.fetch`` as the web process's ``config_get`` answers it (the staff API)."""
    response = session.get(f"{base}/api/staff/config/runs.fetch", timeout=10)
    assert response.status_code == 200, response.text[:2000]
    value: dict[str, Any] = response.json()["value"]
    return value


# --- measuring --------------------------------------------------------------------------------
def seconds_until(check: Callable[[], bool], *, since: float, what: str) -> float:
    """Seconds from ``since`` (time.monotonic) until ``check()`` is first true, polled every
    50 ms for at most WAIT_S; printed."""
    while True:
        if check():
            seconds = time.monotonic() - since
            print(f"{what}: {seconds:.2f} s")
            return seconds
        if time.monotonic() - since > WAIT_S:
            raise AssertionError(f"{what}: not seen after {WAIT_S:g} s")
        time.sleep(0.05)


def flag_make(**fields: Any) -> Flag:
    flag = Flag(**fields)
    flag.save()
    return flag


def in_99(group: str, user_id: int) -> bool:
    return rollout_bucket(group=group, unit=str(user_id)) <= 99


@pytest.fixture
def staff() -> Any:
    return get_user_model().objects.create_superuser(username="flipper", email="f@example.com", password=PASSWORD)


@contextmanager
def processes(tmp_path: Path) -> Iterator[tuple[Worker, str]]:
    # Both start at once; the worker's first answer waits for its boot.
    web_env = {"CELERY_BROKER_URL": child_redis_url(), "CACHE_URL": settings.CACHE_URL}
    with celery_worker(tmp_path) as worker, gunicorn_server(env=web_env, workers=1, threads=4) as base:
        yield worker, base


# --- the tests --------------------------------------------------------------------------------
def test_a_flag_flipped_in_the_admin_of_a_web_process_changes_what_a_worker_process_evaluates_within_5s(
    tmp_path: Path, staff: Any
) -> None:
    member = get_user_model().objects.create_user(username="member", password=PASSWORD)
    # Waffle's percent stops at 99.9: a bucket group where both the member and the staff user
    # fall in (bucket <= 99), so 99.9 % takes both in.
    group = next(g for g in (f"flip-{i}" for i in range(100)) if all(in_99(g, u.pk) for u in (member, staff)))
    flag = flag_make(name="flip_rollout", superusers=False, rollout_group=group, note="flip test")
    flag_make(name="flip_bystander", everyone=True)
    path = f"/admin/flags/flag/{flag.pk}/change/"
    with processes(tmp_path) as (worker, base):
        assert worker_ready(worker, "flip_rollout") is False
        assert worker.evaluate("flip_rollout", user_id=member.pk) is False
        session = admin_session(base, username="flipper")
        assert api_flags(session, base)["flip_rollout"] is False

        # A percentage: 99.9 % (waffle's largest) takes in both of them.
        started = time.monotonic()
        reason = "flip test: 99.9 %"
        admin_change(
            session, base, path=path, form_id="flag_form", changes={"percent": "99.9", "change_reason": reason}
        )
        print(f"admin save took {time.monotonic() - started:.2f} s")
        worker_s = seconds_until(
            lambda: worker.evaluate("flip_rollout", user_id=member.pk), since=started, what="worker sees 99.9 %"
        )
        web_s = seconds_until(lambda: api_flags(session, base)["flip_rollout"], since=started, what="web sees 99.9 %")

        # Everyone "No" wins over the percentage.
        started = time.monotonic()
        admin_change(
            session,
            base,
            path=path,
            form_id="flag_form",
            changes={"everyone": "false", "change_reason": "flip test: off"},
        )
        off_s = seconds_until(
            lambda: not worker.evaluate("flip_rollout", user_id=member.pk), since=started, what="worker sees it off"
        )
        off_web_s = seconds_until(
            lambda: not api_flags(session, base)["flip_rollout"], since=started, what="web sees it off"
        )
        assert worker.evaluate("flip_bystander") is True

    flag.refresh_from_db()
    assert (flag.everyone, flag.percent) == (False, Decimal("99.9"))
    assert flag.history.filter(history_change_reason=reason, history_user=staff).exists()
    assert worker_s < FLIP_LIMIT_S, f"the worker saw 99.9 % after {worker_s:.2f} s"
    assert web_s < FLIP_LIMIT_S, f"the web process showed 99.9 % after {web_s:.2f} s"
    assert off_s < FLIP_LIMIT_S, f"the worker saw the flag off after {off_s:.2f} s"
    assert off_web_s < FLIP_LIMIT_S, f"the web process showed the flag off after {off_web_s:.2f} s"


def test_safe_mode_turned_on_in_the_admin_reaches_a_worker_process_and_the_web_process_within_5s(
    tmp_path: Path, staff: Any
) -> None:
    # The migration made it, unless an earlier transactional test flushed the tables.
    switch, _ = Switch.objects.update_or_create(name=SAFE_MODE, defaults={"active": False})
    flag_make(name="flip_risky", everyone=True, safe_value=False, superusers=False)
    # Declares no safe value: safe mode leaves it alone.
    flag_make(name="flip_plain", everyone=True, superusers=False)
    with processes(tmp_path) as (worker, base):
        assert worker_ready(worker, "flip_risky") is True
        session = admin_session(base, username="flipper")
        assert api_flags(session, base)["flip_risky"] is True
        assert fetch_config(session, base)["unknown_sites"] is True

        started = time.monotonic()
        admin_change(
            session,
            base,
            path=f"/admin/waffle/switch/{switch.pk}/change/",
            form_id="switch_form",
            changes={"active": "on", "change_reason": "flip test: safe mode on"},
        )
        worker_s = seconds_until(
            lambda: not worker.evaluate("flip_risky"), since=started, what="worker answers the safe value"
        )
        web_s = seconds_until(
            lambda: not api_flags(session, base)["flip_risky"], since=started, what="web answers the safe value"
        )
        assert worker.evaluate("flip_plain") is True
        assert api_flags(session, base)["flip_plain"] is True
        config_s = seconds_until(
            lambda: not fetch_config(session, base)["unknown_sites"],
            since=started,
            what="web's runs.fetch config answers its safe value",
        )
        # The worker obeys the config's safe value too: a run of a site not stored yet is
        # paused (deferred, unfailed), not fetched.
        run = match_run_submit(url="https://not-stored-yet.invalid/").run
        claimed = worker.client.send_task("runs.process_batch", queue=worker.queue, ignore_result=False)
        assert claimed.get(timeout=30) == 1
        history = list(QueueHistory.objects.filter(queue=runs_queue.label, item_id=run.pk).order_by("id"))
        assert [h.event for h in history] == ["submit", "claim", "defer"], [(h.event, h.error) for h in history]
        assert "paused" in history[-1].error
        run.refresh_from_db()
        assert (run.status, run.attempts) == (MatchRunStatus.QUEUED, 0)

        # And off again: the flag's own rule is back everywhere.
        started = time.monotonic()
        admin_change(
            session,
            base,
            path=f"/admin/waffle/switch/{switch.pk}/change/",
            form_id="switch_form",
            changes={"change_reason": "flip test: safe mode off"},
            untick=("active",),
        )
        back_s = seconds_until(lambda: worker.evaluate("flip_risky"), since=started, what="worker back to the rule")

    switch.refresh_from_db()
    assert switch.active is False
    assert worker_s < FLIP_LIMIT_S, f"the worker answered the safe value after {worker_s:.2f} s"
    assert web_s < FLIP_LIMIT_S, f"the web process answered the safe value after {web_s:.2f} s"
    assert config_s < FLIP_LIMIT_S, f"the web process's runs.fetch answered its safe value after {config_s:.2f} s"
    assert back_s < FLIP_LIMIT_S, f"the worker went back to the flag's rule after {back_s:.2f} s"
