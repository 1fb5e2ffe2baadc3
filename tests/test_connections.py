"""Connections under load: a web process's bounded pool, and what a request that finds it dry
gets (503 with Retry-After in the error shape, never a 500), wherever it needed the database.

The in-process tests drain this process's real pool (psycopg_pool, through Django) by
checking out every connection it may open, then serve requests from other threads through
Django's whole handler, so the real PoolTimeout surfaces in a DRF view, a plain view or a
middleware. The process tests run gunicorn and bin/run-all against the test database."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from psycopg_pool import PoolTimeout

from matchplatform.db_pool import PoolExhaustedMiddleware, pool_exhaustion_record
from matchplatform.exceptions import ErrorCode
from tests.support.errors import assert_error_shape

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the connection pool is PostgreSQL's (psycopg_pool)"
)

DRY_TIMEOUT = 0.3


def _pool() -> Any:
    pool = connection.pool
    if pool is None:
        pytest.skip("DB_POOL is off: no pool to run dry")
    return pool


@contextmanager
def pool_dry(*, timeout: float = DRY_TIMEOUT) -> Iterator[None]:
    """Every connection the pool may open is checked out here, and a request waits only
    ``timeout`` seconds for one (instead of DB_POOL_TIMEOUT)."""
    pool = _pool()
    held = []
    saved = pool.timeout
    try:
        while True:
            try:
                held.append(pool.getconn(timeout=1.0))
            except PoolTimeout:
                break
        assert pool.get_stats().get("pool_available", 0) == 0
        pool.timeout = timeout
        yield
    finally:
        pool.timeout = saved
        for conn in held:
            pool.putconn(conn)


def in_thread(call: Callable[[], Any]) -> Any:
    """Runs ``call`` in a new thread (a new set of Django connections, as a request thread of
    gunicorn's has) and returns what it returned. The clients are made with
    ``raise_request_exception=False``: the test client would otherwise re-raise the exception a
    request died of, where a server answers with the response made of it."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc
        finally:
            # The test client keeps a request's connection open (for the test's transaction);
            # a server hands it back to the pool at the end of the request, as this does.
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]
    return out["value"]


def assert_unavailable(response: Any) -> None:
    assert_error_shape(response, 503, ErrorCode.UNAVAILABLE)
    assert response["Retry-After"] == "2"


@pytest.fixture
def member(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="pooled", password="pw-for-tests")


@pytest.mark.django_db(transaction=True)
def test_a_drf_view_that_finds_the_pool_dry_answers_503_with_retry_after():
    url = f"/api/match/run/{uuid.uuid4()}"
    assert (
        in_thread(lambda: Client(raise_request_exception=False).get(url)).status_code == 404
    )  # the pool serves it when it can
    with pool_dry():
        response = in_thread(lambda: Client(raise_request_exception=False).get(url))
    assert_unavailable(response)


@pytest.mark.django_db(transaction=True)
def test_a_plain_django_view_that_finds_the_pool_dry_answers_503(member):
    client = Client(raise_request_exception=False)
    client.force_login(member)
    assert in_thread(lambda: client.get("/matches")).status_code == 200
    with pool_dry():
        response = in_thread(lambda: client.get("/matches"))
    assert_unavailable(response)


def _user_loading_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    # Like any middleware that reads the user before the view (an audit log, a lockout check).
    def middleware(request: HttpRequest) -> HttpResponse:
        _ = request.user.is_authenticated  # loads the session's user now
        return get_response(request)

    return middleware


@pytest.mark.django_db(transaction=True)
def test_a_middleware_that_finds_the_pool_dry_gets_a_503_not_its_wrappers_500(member, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}._user_loading_middleware"]
    client = Client(raise_request_exception=False)
    client.force_login(member)
    # The schema view needs no database: only the middleware does.
    assert in_thread(lambda: client.get("/api/schema/")).status_code == 200
    with pool_dry():
        response = in_thread(lambda: client.get("/api/schema/"))
    assert_unavailable(response)


@pytest.mark.django_db(transaction=True)
def test_under_debug_the_503_comes_after_one_wait_not_one_per_attempt(member, settings):
    """Django's debug page shows the user, which tries the database again; the request has
    already waited its turn, so that attempt fails at once."""
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    client.force_login(member)
    wait = 2.5
    with pool_dry(timeout=wait):
        started = time.monotonic()
        response = in_thread(lambda: client.get("/matches"))
        elapsed = time.monotonic() - started
    assert_unavailable(response)
    # Two waits would take 2 x 2.5 s; one leaves 2 s for rendering the debug page on a busy machine.
    assert elapsed < 2 * wait - 0.5, f"{elapsed:.2f} s: the request waited for the pool more than once"


@pytest.mark.django_db(transaction=True)
def test_the_readiness_check_of_a_node_whose_pool_is_all_in_use_answers_ready_at_once():
    # Busy is not down: a loaded cluster must not take all its nodes out of the load balancer.
    with pool_dry(timeout=5.0):
        started = time.monotonic()
        response = in_thread(lambda: Client(raise_request_exception=False).get("/api/health/ready"))
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content
    assert response.json()["database"]["ok"] is True
    assert elapsed < 4.0, f"{elapsed:.2f} s: readiness waited for the pool"


def test_a_view_that_answers_its_own_503_on_a_dry_pool_keeps_its_body():
    def health(request: HttpRequest) -> HttpResponse:
        pool_exhaustion_record()  # what the backend does when the pool times out
        return JsonResponse({"status": "critical", "database": {"ok": False}}, status=503)

    response = PoolExhaustedMiddleware(health)(HttpRequest())
    assert response.status_code == 503
    assert json.loads(response.content)["status"] == "critical"
    assert response["Retry-After"] == "2"


def test_other_server_errors_stay_500():
    def broken(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=500)

    response = PoolExhaustedMiddleware(broken)(HttpRequest())
    assert response.status_code == 500
    assert not response.has_header("Retry-After")


# --- real servers -------------------------------------------------------------------------


def _get(url: str, *, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_hundred_concurrent_requests_on_a_pool_of_ten_get_no_500():
    from tests.support.servers import gunicorn_server, web_connections_peak

    # One process, 100 threads, 10 connections, and a short wait for one: some requests
    # may be turned away with a 503, none may fail.
    env = {"DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "10", "DB_POOL_TIMEOUT": "0.5"}
    with gunicorn_server(env=env, workers=1, threads=100) as url, web_connections_peak() as peak:
        barrier = threading.Barrier(200)

        def request(i: int) -> tuple[int, dict[str, str], bytes]:
            barrier.wait(timeout=30)
            return _get(f"{url}/api/match/run/{uuid.uuid4()}")

        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(request, range(200)))
    statuses = [status for status, _, _ in results]
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    assert set(statuses) <= {404, 503}, statuses
    for status, headers, body in results:
        if status == 503:
            assert headers.get("Retry-After") == "2"
            assert json.loads(body)["error"]["code"] == ErrorCode.UNAVAILABLE
    assert 0 < peak[0] <= 10, f"the web process held {peak[0]} connections"
    print(f"\n200 concurrent: {statuses.count(404)} answered, {statuses.count(503)} x 503; peak {peak[0]} connections")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_web_server_make_run_starts_stays_within_its_pool_over_3000_requests():
    """bin/run-all (what make run starts) on PostgreSQL: web, worker and beat; 3,000 requests
    to web, 50 at a time; its connections never exceed workers x DB_POOL_MAX_SIZE."""
    from tests.support.servers import run_all, web_connections_counter, web_connections_peak

    web_workers, pool_max = 2, 4
    bound = web_workers * pool_max
    env = {"WEB_WORKERS": str(web_workers), "WEB_THREADS": "8", "DB_POOL_MAX_SIZE": str(pool_max)}
    with run_all(env=env) as url:
        paths = ["/api/match/run/00000000-0000-0000-0000-000000000000", "/api/health/live"]
        with web_connections_peak() as peak, ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(lambda i: _get(f"{url}{paths[i % 2]}")[0], range(3000)))
        with web_connections_counter() as count:
            after = count()
    assert not [s for s in statuses if s >= 500], sorted(set(statuses))
    assert 0 < peak[0] <= bound, f"web held {peak[0]} connections, more than its {bound}"
    assert after <= bound
    print(f"\n3,000 requests to run-all's web: peak {peak[0]} connections (bound {bound})")


# -- checking pooled connections (matchplatform/postgresql/base.py) ----------------------------


def _pooled_backend_pids() -> set[int]:
    """The server pids of the connections idle in this process's pool (each checked out and
    asked once, then handed back)."""
    pool = _pool()
    held = [pool.getconn(timeout=2.0) for _ in range(pool.get_stats().get("pool_available", 0))]
    try:
        return {conn.info.backend_pid for conn in held}
    finally:
        for conn in held:
            pool.putconn(conn)


@pytest.mark.django_db(transaction=True)
def test_connections_the_server_killed_are_replaced_without_a_failed_request(member, settings):
    """As after a PostgreSQL restart: every idle connection of the pool is terminated by the
    server; the next requests answer 200 (each dead connection is found by its socket and
    dropped), and the pool holds live connections again."""
    import psycopg

    assert settings.DB_CONN_HEALTH_CHECKS and connection.pool is not None
    client = Client(raise_request_exception=False)
    client.force_login(member)
    for _ in range(3):
        assert in_thread(lambda: client.get("/matches")).status_code == 200
    victims = _pooled_backend_pids()
    assert victims
    params = connection.get_connection_params()
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FROM unnest(%s::int[]) pid WHERE pg_terminate_backend(pid)", [list(victims)]
        ).fetchone()
    assert killed is not None and killed[0] == len(victims)
    time.sleep(0.2)  # the server's goodbye reaches the sockets
    statuses = [in_thread(lambda: client.get("/matches")).status_code for _ in range(len(victims) + 2)]
    assert statuses == [200] * len(statuses)
    assert not victims & _pooled_backend_pids()


def _signed_in_after_one_request(member: Any) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(member)
    assert in_thread(lambda: client.get("/matches")).status_code == 200  # the pool holds a used connection
    return client


def _count_check_queries(monkeypatch: Any) -> list[Any]:
    """The connections asked the empty query from now on (psycopg_pool's check, which the
    backend calls)."""
    from psycopg_pool import ConnectionPool

    asked: list[Any] = []
    real = ConnectionPool.check_connection
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda conn: asked.append(conn) or real(conn)))
    return asked


@pytest.mark.django_db(transaction=True)
def test_a_live_pooled_connection_is_handed_out_without_a_query(member, monkeypatch):
    """The check is a look at the socket: a healthy idle connection costs no round trip."""
    client = _signed_in_after_one_request(member)
    asked = _count_check_queries(monkeypatch)
    for _ in range(5):
        assert in_thread(lambda: client.get("/matches")).status_code == 200
    assert asked == []


@pytest.mark.django_db(transaction=True)
def test_a_connection_idle_longer_than_the_limit_is_asked_the_query(member, monkeypatch, settings):
    """A dropped idle flow (a firewall, a load balancer) leaves nothing on the socket: past
    DB_POOL_CHECK_IDLE_SECONDS a connection gets the empty query too."""
    settings.DB_POOL_CHECK_IDLE_SECONDS = 0.0
    client = _signed_in_after_one_request(member)
    asked = _count_check_queries(monkeypatch)
    time.sleep(0.01)
    assert in_thread(lambda: client.get("/matches")).status_code == 200
    assert asked
