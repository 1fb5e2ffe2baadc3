"""A real Celery worker is SIGKILLed while it holds a run (DESIGN.md: "SIGKILL a worker
mid-job"): another worker finishes the run within lease TTL + sweep period, its result is
stored once, and a late ack carrying the dead worker's fencing token is refused.

Everything is real except DNS: PostgreSQL, Redis (the test configuration's database,
``CELERY_BROKER_URL``, flushed), two worker processes, a beat process, and an HTTP server on
127.0.0.1 serving the startup's page. The workers run the ``celery`` command through a tiny
launcher that answers one made-up host name with 127.0.0.1, the same fake test_fetch.py
installs in-process; the SSRF checks still run and still need ``RUNS_FETCH_ALLOWED_NETWORKS``
to let 127.0.0.0/8 through.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from matchplatform.exceptions import LeaseLost
from ops.models import QueueHistory
from ops.queue import Lease
from runs.models import MatchRun, MatchRunStatus, StartupInvestorMatch
from runs.queue import runs_queue
from runs.services import match_run_submit
from tests.factories import InvestorFactory
from tests.support.broker import celery_pools_reset
from tests.support.servers import child_redis_url

# The production defaults: the acceptance point is stated with them.
LEASE_TTL_SECONDS = 30.0
SWEEP_SECONDS = 10.0
# Worker B's fetch, scoring and ack, plus the polling granularity of this test.
SLACK_SECONDS = 5.0
STARTUP_HOST = "ledgerly-crash.example"  # never resolved for real: the launcher answers it
INVESTORS = 12
PAGE = (
    b"<!doctype html><html><head><title>Ledgerly</title>"
    b'<meta name="description" content="AI bookkeeping for fintech teams."></head>'
    b"<body><p>Ledgerly closes your books.</p></body></html>"
)

# Runs the ``celery`` command with one host name answered locally. Passed to ``python -c``
# so the worker is exactly ``celery -A matchplatform worker ...`` apart from DNS.
CELERY_WITH_FAKE_DNS = """
import os, socket, sys

answers = dict(item.split("=", 1) for item in os.environ["TEST_DNS_ANSWERS"].split(",") if item)
real_getaddrinfo = socket.getaddrinfo

def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if host in answers:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
    return real_getaddrinfo(host, port, family, type, proto, flags)

socket.getaddrinfo = getaddrinfo
from celery.__main__ import main
sys.argv = ["celery", *sys.argv[1:]]
sys.exit(main())
"""

T = TypeVar("T")


# --- the startup's page ----------------------------------------------------------------------


class _PageHandler(BaseHTTPRequestHandler):
    server: _PageServer

    def do_GET(self) -> None:
        with self.server.lock:
            first = not self.server.requests
            self.server.requests.append(self.path)
        if first:
            # Worker A's fetch: hold it here so A keeps the lease until it is killed.
            self.server.first_request.set()
            self.server.release.wait(timeout=300)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
        except OSError:
            pass  # worker A is dead by the time its request is let go

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.first_request = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _PageHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup we neither need nor want to wait for.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def page_server() -> Iterator[_PageServer]:
    server = _PageServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the broker ------------------------------------------------------------------------------


@pytest.fixture
def broker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The test configuration's Redis database, empty, and this process's Celery app sending to
    it. (The cache shares it under ``make test``; every test clears the cache anyway.)"""
    import redis

    broker_url = child_redis_url()
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=5)
    client.ping()  # make test starts Redis; a missing one is a failure, not a skip
    client.flushdb()

    from matchplatform.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    settings.OPS_WAKE_WORKERS = True
    settings.CELERY_BROKER_URL = broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    celery_pools_reset(app)
    try:
        yield client
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        celery_pools_reset(app)
        client.flushdb()
        client.close()


# --- processes -------------------------------------------------------------------------------


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill_group(self, sig: signal.Signals) -> None:
        # Each process leads its own session, so this reaches anything it forked too. Only
        # while the leader is unreaped: after that its pid (the group id) may be reused.
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        self.kill_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        # A warm shutdown that does not end in time ends now.
        self.kill_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def _celery_spawn(*, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> _Proc:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-c", CELERY_WITH_FAKE_DNS, "-A", "matchplatform", *args, "--loglevel=INFO"],
            cwd=str(django_settings.BASE_DIR),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return _Proc(name=name, popen=popen, log=log)


def _worker_args(*, node: str) -> list[str]:
    return [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        "celery",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{node}@%h",
    ]


def _database_url() -> str:
    """The URL of the database this test runs in (pytest-django's test database)."""
    db = connection.settings_dict
    auth = quote(str(db.get("USER") or ""), safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(str(db["PASSWORD"]), safe="")
    host = quote(str(db.get("HOST") or "localhost"), safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth + '@' if auth else ''}{host}{port}/{quote(str(db['NAME']), safe='')}"


def _worker_env(*, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="matchplatform.settings",
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=broker_url,
        OPS_WAKE_WORKERS="true",
        RUNS_FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
        RUNS_LEASE_TTL_SECONDS=f"{LEASE_TTL_SECONDS:g}",
        OPS_SWEEP_SECONDS=f"{SWEEP_SECONDS:g}",
        # Worker A must still be waiting on the page when it dies, not failing the fetch.
        RUNS_FETCH_TIMEOUT_SECONDS="120",
        TEST_DNS_ANSWERS=f"{STARTUP_HOST}=127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_for(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _logs_print(procs: list[_Proc]) -> None:
    for proc in procs:
        text = proc.log.read_text(errors="replace") if proc.log.exists() else "(no log)"
        print(f"\n----- {proc.name} (pid {proc.pid}, exit {proc.popen.poll()}) {proc.log} -----\n{text}")


def _history(run_id: int) -> list[dict[str, Any]]:
    return list(
        QueueHistory.objects.filter(queue=runs_queue.label, item_id=run_id)
        .order_by("id")
        .values("event", "from_status", "to_status", "lease_owner", "lease_token", "attempt")
    )


def _db_now() -> Any:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


# --- the test --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_held_by_a_sigkilled_worker_is_finished_once_by_another_and_the_late_ack_is_refused(
    broker: Any, page_server: _PageServer, tmp_path: Path
) -> None:
    assert connection.vendor == "postgresql", "worker processes share the test database, which needs PostgreSQL"
    InvestorFactory.create_batch(INVESTORS)
    env = _worker_env(broker_url=django_settings.CELERY_BROKER_URL)
    procs: list[_Proc] = []
    try:
        # The submit's on_commit wake is the only thing that sends worker A to the run.
        run = match_run_submit(url=f"http://{STARTUP_HOST}:{page_server.server_port}/").run
        assert run.status == MatchRunStatus.QUEUED
        assert broker.llen("celery") == 1, "the submit did not wake a worker through Redis"

        worker_a = _celery_spawn(name="worker-a", args=_worker_args(node="a"), env=env, log_dir=tmp_path)
        procs.append(worker_a)
        _wait_for(page_server.first_request.is_set, timeout=60, what="worker A to fetch the startup's page")
        held = _wait_for(
            lambda: (
                MatchRun.objects.filter(pk=run.pk, status=MatchRunStatus.PROCESSING)
                .exclude(lease_owner="")
                .values("lease_owner", "lease_token", "lease_expires_at", "attempts")
                .first()
            ),
            timeout=10,
            what="worker A's lease on the run",
        )
        owner_a, old_token = held["lease_owner"], held["lease_token"]
        # The worker id is per process: the lease names worker A's own pid.
        assert owner_a.startswith(f"w-{worker_a.pid}-")
        assert held["attempts"] == 1

        claimed_at_db = QueueHistory.objects.get(item_id=run.pk, queue=runs_queue.label, event="claim").created_at
        killed_at_db = _db_now()
        killed_at = time.monotonic()
        worker_a.kill_group(signal.SIGKILL)
        assert worker_a.popen.wait(timeout=10) == -signal.SIGKILL

        # Nothing finishes a dead worker's run but the sweep: it is still leased to A.
        assert MatchRun.objects.filter(pk=run.pk, status=MatchRunStatus.PROCESSING, lease_token=old_token).exists()

        worker_b = _celery_spawn(name="worker-b", args=_worker_args(node="b"), env=env, log_dir=tmp_path)
        procs.append(worker_b)
        beat = _celery_spawn(
            name="beat",
            args=[
                "beat",
                "--scheduler",
                "celery.beat:PersistentScheduler",
                "--schedule",
                str(tmp_path / "beat-schedule"),
            ],
            env=env,
            log_dir=tmp_path,
        )
        procs.append(beat)

        budget = LEASE_TTL_SECONDS + SWEEP_SECONDS + SLACK_SECONDS
        _wait_for(
            lambda: MatchRun.objects.filter(pk=run.pk, status=MatchRunStatus.READY).exists(),
            timeout=budget + 30,
            what="another worker to finish the run",
            interval=0.2,
        )
        elapsed = time.monotonic() - killed_at
        run.refresh_from_db()
        history = _history(run.pk)
        rescued_at_db = QueueHistory.objects.get(item_id=run.pk, queue=runs_queue.label, event="rescue").created_at
        print(
            f"\nclaim -> SIGKILL {(killed_at_db - claimed_at_db).total_seconds():.2f} s (DB clock); "
            f"SIGKILL -> rescue {(rescued_at_db - killed_at_db).total_seconds():.2f} s (DB clock); "
            f"SIGKILL -> ready {elapsed:.2f} s (observed), "
            f"{(run.finished_at - killed_at_db).total_seconds():.2f} s (DB clock); "
            f"budget {budget:g} s"
        )
        assert elapsed <= budget, f"the run was finished {elapsed:.1f} s after the kill, budget {budget:g} s"

        # Finished by worker B, once.
        assert run.status == MatchRunStatus.READY
        assert run.attempts == 2
        assert run.rescues == 1
        assert run.last_error == ""
        assert run.lease_token != old_token
        assert run.startup is not None
        assert run.startup.name == "Ledgerly"
        assert run.match_count == INVESTORS
        rows = list(StartupInvestorMatch.objects.filter(run_id=run.pk).values_list("rank", "investor_id"))
        assert len(rows) == run.match_count
        assert sorted(rank for rank, _ in rows) == list(range(1, run.match_count + 1))
        assert len({investor for _, investor in rows}) == run.match_count

        assert [h["event"] for h in history] == ["submit", "claim", "rescue", "claim", "ack"]
        _, claim_a, rescue, claim_b, ack = history
        assert (claim_a["lease_owner"], claim_a["lease_token"], claim_a["attempt"]) == (owner_a, old_token, 1)
        assert (rescue["from_status"], rescue["to_status"]) == (MatchRunStatus.PROCESSING, MatchRunStatus.QUEUED)
        assert (rescue["lease_owner"], rescue["lease_token"]) == (owner_a, old_token)
        assert claim_b["lease_owner"].startswith(f"w-{worker_b.pid}-")
        assert (claim_b["lease_token"], claim_b["attempt"]) == (run.lease_token, 2)
        assert (ack["to_status"], ack["lease_token"]) == (MatchRunStatus.READY, run.lease_token)
        # The page was fetched once by A (never answered) and once by B.
        assert len(page_server.requests) == 2

        # Worker A's result, arriving late with the old fencing token, is refused.
        stored = list(
            StartupInvestorMatch.objects.filter(run_id=run.pk)
            .order_by("rank")
            .values_list("id", "investor_id", "score")
        )
        late_results_stored: list[bool] = []
        with pytest.raises(LeaseLost):
            runs_queue.ack(
                lease=Lease(id=run.pk, token=old_token, attempt=1),
                fields={"match_count": 0},
                on_ack=lambda: late_results_stored.append(True),
            )
        assert late_results_stored == []
        assert (
            list(
                StartupInvestorMatch.objects.filter(run_id=run.pk)
                .order_by("rank")
                .values_list("id", "investor_id", "score")
            )
            == stored
        )
        after = MatchRun.objects.values("status", "match_count", "lease_token").get(pk=run.pk)
        assert after == {"status": MatchRunStatus.READY, "match_count": INVESTORS, "lease_token": run.lease_token}
        lost = _history(run.pk)[-1]
        assert lost["event"] == "lease_lost"
        assert (lost["lease_token"], lost["attempt"]) == (old_token, 1)
        assert (lost["from_status"], lost["to_status"]) == (MatchRunStatus.READY, MatchRunStatus.READY)
    except BaseException:
        for proc in procs:
            proc.stop()
        _logs_print(procs)
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()
