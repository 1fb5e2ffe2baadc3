"""page_fetch against a real HTTP server on 127.0.0.1; only DNS answers are faked."""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from runs import fetch
from runs.fetch import FetchError, PageProfile, page_fetch, sectors_detect

LOOPBACK_ONLY = ["127.0.0.1/32"]


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0  # before anything is sent
    trickle_seconds: float = 0.0  # between body bytes, after the headers
    send_length: bool = True


@dataclass
class Served:
    port: int
    pages: dict[str, Page]
    requests: list[tuple[str, str]]  # (path, Host header)

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        path = self.path.split("?", 1)[0]
        page = self.server.pages.get(path, Page(status=404, body=b"<p>not here</p>"))
        try:
            time.sleep(page.delay_seconds)
            self.send_response(page.status)
            if page.content_type is not None:
                self.send_header("Content-Type", page.content_type)
            if page.send_length:
                self.send_header("Content-Length", str(len(page.body)))
            for name, value in page.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if page.trickle_seconds:
                for byte in page.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(page.trickle_seconds)
            else:
                self.wfile.write(page.body)
        except OSError:
            pass  # the client gave up first, which is what several tests are about

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    pages: dict[str, Page]
    requests: list[tuple[str, str]]

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup we neither need nor want to wait for.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture(scope="module")
def _server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.pages = {}
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def served(_server: _Server) -> Served:
    _server.pages.clear()
    _server.requests.clear()
    return Served(port=_server.server_address[1], pages=_server.pages, requests=_server.requests)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str] | Callable[[], list[str]]]:
    """Fake DNS answers by host name; any other name goes to the real resolver."""
    answers: dict[str, list[str] | Callable[[], list[str]]] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0):
        if host not in answers:
            return real_getaddrinfo(host, port, family, type, proto, flags)
        answer = answers[host]
        addresses = answer() if callable(answer) else answer
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", getaddrinfo)
    return answers


def _html(*, title: str = "", head: str = "", body: str = "") -> bytes:
    return f"<!doctype html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>".encode()


ACME_HOME = _html(
    title="Pricing | Acme Robotics",
    head=(
        '<meta property="og:site_name" content="Acme Robotics">'
        '<meta name="description" content="  Warehouse robots and AI\n for same-day delivery. ">'
    ),
    body="<svg><title>Menu icon</title></svg><p>Ignored, because the meta description wins.</p>",
)


def test_a_host_resolving_to_loopback_is_refused_without_contacting_it(served: Served, dns: dict) -> None:
    served.pages["/"] = Page(body=ACME_HOME)
    dns["startup.example"] = ["127.0.0.1"]

    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url(host="startup.example"))

    # The same code and words as a name that does not exist: no probing of internal names.
    assert caught.value.code == "host_unresolvable"
    assert caught.value.retryable is False
    assert caught.value.message == (
        f"refusing to fetch {served.url(host='startup.example')}: the host resolves to a non-public address"
    )
    assert caught.value.public == "The host startup.example does not resolve to a public address."
    # Users must not learn how internal names resolve.
    assert "127.0.0.1" not in caught.value.message + caught.value.public
    assert served.requests == []


def test_a_loopback_ip_literal_is_refused_without_contacting_it(served: Served) -> None:
    served.pages["/"] = Page(body=ACME_HOME)

    with pytest.raises(FetchError, match=r"refusing to fetch .*private, local or reserved"):
        page_fetch(url=served.url())

    assert served.requests == []


def test_a_host_with_any_private_address_among_public_ones_is_refused(served: Served, dns: dict) -> None:
    dns["startup.example"] = ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(FetchError, match=r"resolves to a non-public address$"):
        page_fetch(url="http://startup.example/")


def test_an_invalid_url_is_refused_before_any_lookup(dns: dict) -> None:
    with pytest.raises(FetchError, match=r"refusing to fetch ftp://acme.io/: URL must start with http"):
        page_fetch(url="ftp://acme.io/")


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=["127.0.0.0/8"])
def test_an_allow_listed_page_is_fetched_and_profiled(served: Served) -> None:
    served.pages["/"] = Page(body=ACME_HOME)

    profile = page_fetch(url=served.url("/?utm_source=newsletter#top"))

    assert profile == PageProfile(
        name="Acme Robotics",
        description="Warehouse robots and AI for same-day delivery.",
        sectors=["ai", "logistics", "robotics"],
        final_url=f"http://127.0.0.1:{served.port}",
    )
    assert served.requests == [("/?utm_source=newsletter", f"127.0.0.1:{served.port}")]


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_the_connection_goes_to_the_vetted_address_with_the_original_host_header(served: Served, dns: dict) -> None:
    served.pages["/"] = Page(body=ACME_HOME)
    # A rebinding resolver: the first answer passes the check, later ones point inward.
    answers = iter([["127.0.0.1"]])
    dns["startup.example"] = lambda: next(answers, ["10.0.0.1"])

    profile = page_fetch(url=served.url(host="startup.example"))

    assert profile.name == "Acme Robotics"
    assert profile.final_url == f"http://startup.example:{served.port}"
    assert served.requests == [("/", f"startup.example:{served.port}")]


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_without_meta_tags_the_name_comes_from_the_title_and_the_description_from_the_first_paragraph(
    served: Served, dns: dict
) -> None:
    served.pages["/about/"] = Page(
        body=_html(
            title="About us \u2014 Ledgerly",
            body=(
                "<script>var p = '<p>not this</p>';</script><p>  </p>"
                "<div><p>Ledgerly &amp; friends do <b>payments</b>\n\n for  freelancers.</div>"
                "<p>Second paragraph, about crypto.</p>"
            ),
        )
    )
    dns["ledgerly.example"] = ["127.0.0.1"]

    profile = page_fetch(url=served.url("/about/", host="ledgerly.example"))

    assert profile.name == "Ledgerly"
    assert profile.description == "Ledgerly & friends do payments for freelancers."
    assert profile.sectors == ["fintech"]


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Pricing | Startup", "Startup"),
        ("Startup - Payments for robots", "Startup"),
        ("Home \u00b7 Startup Inc", "Startup Inc"),
        ("Welcome to Startup", "Welcome to Startup"),
        ("Startup: the e-commerce engine", "Startup"),
        ("", "startup.example"),
    ],
)
@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_the_name_drops_the_title_suffix_that_is_not_the_site(served: Served, dns: dict, title: str, name: str) -> None:
    served.pages["/"] = Page(body=_html(title=title))
    dns["www.startup.example"] = ["127.0.0.1"]

    assert page_fetch(url=served.url(host="www.startup.example")).name == name


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_name_and_description_are_capped(served: Served) -> None:
    served.pages["/"] = Page(
        body=_html(
            head=f'<meta property="og:site_name" content="{"N" * 500}">'
            f'<meta property="og:description" content="{"word " * 1000}">'
        )
    )

    profile = page_fetch(url=served.url())

    assert len(profile.name) == 200
    assert len(profile.description) <= 2000
    assert profile.description.startswith("word word")


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_a_relative_redirect_is_followed_and_reported_as_the_final_url(served: Served) -> None:
    served.pages["/"] = Page(status=301, headers={"Location": "/en/home/?ref=root"})
    served.pages["/en/home/"] = Page(body=ACME_HOME)

    profile = page_fetch(url=served.url())

    assert profile.name == "Acme Robotics"
    assert profile.final_url == f"http://127.0.0.1:{served.port}/en/home"
    assert [path for path, _ in served.requests] == ["/", "/en/home/?ref=root"]


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://10.0.0.1/", "URL must not point to a private, local or reserved IP address."),
        ("http://127.0.0.2/", "URL must not point to a private, local or reserved IP address."),
        ("http://[::1]/", "URL must not point to a private, local or reserved IP address."),
        ("http://localhost/", "URL must not point to localhost."),
        ("file:///etc/passwd", "URL must start with http:// or https://."),
        ("http://admin:admin@startup.example/", "URL must not contain a user name or password."),
    ],
)
def test_a_redirect_to_a_forbidden_url_is_refused(served: Served, location: str, reason: str) -> None:
    served.pages["/"] = Page(status=302, headers={"Location": location})

    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url())

    assert caught.value.message == (f"refusing to follow the redirect from {served.url()} to {location}: {reason}")
    assert len(served.requests) == 1


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_a_redirect_to_a_host_resolving_to_a_private_address_is_refused(served: Served, dns: dict) -> None:
    served.pages["/"] = Page(status=307, headers={"Location": "http://intranet.example/admin"})
    dns["intranet.example"] = ["192.168.1.1"]

    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url())

    assert caught.value.message == (
        "refusing to fetch http://intranet.example/admin: the host resolves to a non-public address"
    )


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY, RUNS_FETCH_MAX_REDIRECTS=2)
def test_a_redirect_chain_longer_than_the_limit_fails(served: Served) -> None:
    for hop in (3, 2, 1):
        served.pages[f"/hop/{hop}"] = Page(status=302, headers={"Location": f"/hop/{hop - 1}"})
    served.pages["/hop/0"] = Page(body=ACME_HOME)

    assert page_fetch(url=served.url("/hop/2")).name == "Acme Robotics"
    with pytest.raises(FetchError, match=r"too many redirects fetching .*/hop/3: gave up after 2"):
        page_fetch(url=served.url("/hop/3"))


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_a_redirect_loop_fails(served: Served) -> None:
    served.pages["/a"] = Page(status=302, headers={"Location": "/b"})
    served.pages["/b"] = Page(status=302, headers={"Location": "/a"})

    with pytest.raises(FetchError, match="too many redirects"):
        page_fetch(url=served.url("/a"))


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY, RUNS_FETCH_MAX_BYTES=10_000)
@pytest.mark.parametrize("send_length", [True, False], ids=["declared", "undeclared"])
def test_a_page_over_the_size_cap_fails(served: Served, send_length: bool) -> None:
    served.pages["/huge"] = Page(body=_html(body="<p>" + "x" * 20_000 + "</p>"), send_length=send_length)

    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url("/huge"))

    assert caught.value.message == f"page at {served.url('/huge')} is larger than 10000 bytes"


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY, RUNS_FETCH_MAX_BYTES=10_000)
def test_a_compressed_page_is_inflated_and_capped_by_its_inflated_size(served: Served) -> None:
    served.pages["/small"] = Page(body=gzip.compress(ACME_HOME), headers={"Content-Encoding": "gzip"})
    served.pages["/bomb"] = Page(body=gzip.compress(b" " * 1_000_000), headers={"Content-Encoding": "gzip"})

    assert page_fetch(url=served.url("/small")).name == "Acme Robotics"
    with pytest.raises(FetchError, match="is larger than 10000 bytes"):
        page_fetch(url=served.url("/bomb"))


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_a_non_html_page_fails(served: Served) -> None:
    served.pages["/logo.png"] = Page(body=b"\x89PNG\r\n", content_type="image/png")

    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url("/logo.png"))

    assert caught.value.message == f"{served.url('/logo.png')} is not an HTML page (content type image/png)"
    assert (caught.value.code, caught.value.retryable) == ("fetch_failed", False)


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(404, "fetch_failed", False), (410, "fetch_failed", False), (500, "unavailable", True)],
)
def test_an_http_error_status_fails_for_good_on_4xx_and_for_now_on_5xx(
    served: Served, status: int, code: str, retryable: bool
) -> None:
    served.pages["/"] = Page(status=status, body=b"<p>oops</p>")

    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url())

    assert caught.value.message == f"HTTP {status} from {served.url()}"
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.public == f"The page at {served.url()} answered HTTP {status}."


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY, RUNS_FETCH_TIMEOUT_SECONDS=0.2)
def test_a_slow_server_times_out(served: Served) -> None:
    served.pages["/slow"] = Page(body=ACME_HOME, delay_seconds=1.0)

    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        page_fetch(url=served.url("/slow"))

    assert time.monotonic() - started < 0.8
    assert caught.value.message == f"timed out after 0.2 s fetching {served.url('/slow')}"
    # A timeout is the platform's or the site's passing trouble: retried, not an input error.
    assert (caught.value.code, caught.value.retryable) == ("unavailable", True)


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY, RUNS_FETCH_TIMEOUT_SECONDS=0.3)
def test_a_server_trickling_its_body_is_cut_off_at_the_deadline(served: Served) -> None:
    # Each byte arrives well within the socket timeout; only a deadline for the whole
    # fetch stops this.
    served.pages["/drip"] = Page(body=b"<p>" + b"x" * 100 + b"</p>", trickle_seconds=0.02)

    started = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 0\.3 s"):
        page_fetch(url=served.url("/drip"))

    assert time.monotonic() - started < 0.8


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY, RUNS_FETCH_TIMEOUT_SECONDS=0.3)
def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline() -> None:
    # Status line and headers a byte at a time: every read returns within the socket
    # timeout, so only the watchdog on the whole exchange ends it.
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"x" * 200:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match=r"timed out after 0\.3 s"):
            page_fetch(url=url)
        assert time.monotonic() - started < 0.8
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_a_refused_connection_fails_readably() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    # Nothing listens on the port any more.

    with pytest.raises(FetchError) as caught:
        page_fetch(url=f"http://127.0.0.1:{port}/")

    assert caught.value.message == f"connection refused by 127.0.0.1:{port} fetching http://127.0.0.1:{port}/"


def test_an_unresolvable_host_is_a_permanent_input_error(dns: dict) -> None:
    dns["gone.example"] = []

    with pytest.raises(FetchError) as caught:
        page_fetch(url="https://gone.example/")

    assert caught.value.message == (
        "could not resolve the host gone.example of https://gone.example/: Name or service not known"
    )
    assert (caught.value.code, caught.value.retryable) == ("host_unresolvable", False)
    assert caught.value.public == "The host gone.example does not resolve to a public address."


def test_a_resolver_that_fails_for_now_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(fetch.socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(FetchError) as caught:
        page_fetch(url="https://flaky-dns.example/")

    assert (caught.value.code, caught.value.retryable) == ("unavailable", True)
    assert "Temporary failure" in caught.value.message
    assert "Temporary failure" not in caught.value.public


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_https_to_a_server_without_tls_fails_readably(served: Served, dns: dict) -> None:
    dns["startup.example"] = ["127.0.0.1"]

    with pytest.raises(FetchError, match=f"TLS error talking to startup.example:{served.port}"):
        page_fetch(url=served.url(host="startup.example").replace("http://", "https://"))


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"", "127.0.0.1:{port} closed the connection without answering"),
        (b"SPAM\r\n\r\n", "invalid HTTP response from http://127.0.0.1:{port}/: BadStatusLine"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 500\r\n\r\n<p>cut",
            "invalid HTTP response from http://127.0.0.1:{port}/: IncompleteRead",
        ),
    ],
    ids=["hang-up", "garbage", "truncated"],
)
def test_a_broken_http_server_fails_readably(reply: bytes, message: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def answer_once() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(reply)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchError) as caught:
            page_fetch(url=f"http://127.0.0.1:{port}/")
        assert caught.value.message == message.format(port=port)
    finally:
        thread.join(timeout=1)
        listener.close()


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_the_charset_from_the_header_decodes_the_page(served: Served) -> None:
    served.pages["/"] = Page(
        body="<title>Caf\u00e9 Ol\u00e9 - food delivery</title>".encode("latin-1"),
        content_type="text/html; charset=ISO-8859-1",
    )

    profile = page_fetch(url=served.url())

    assert profile.name == "Caf\u00e9 Ol\u00e9"
    assert profile.sectors == ["logistics", "foodtech"]


@override_settings(RUNS_FETCH_ALLOWED_NETWORKS=LOOPBACK_ONLY)
def test_undecodable_bytes_and_malformed_html_still_give_a_profile(served: Served) -> None:
    served.pages["/"] = Page(
        body=b"<html><head><title>Robo\xff\xfeWorks</title></head><body><p>Drone automation</p><![bogus[ x",
        content_type="text/html",
    )

    profile = page_fetch(url=served.url())

    assert profile.name == "Robo\ufffd\ufffdWorks"
    assert profile.description == "Drone automation"
    assert profile.sectors == ["robotics"]


@pytest.mark.parametrize(
    ("text", "sectors"),
    [
        ("AI-powered payments for clinics", ["ai", "fintech"]),
        ("We said we paid the rental", []),
        ("Open  source SDK for e-commerce checkout", ["devtools", "ecommerce"]),
        ("SUPPLY CHAIN visibility", ["logistics"]),
        ("Real\nestate on the blockchain", ["proptech", "crypto"]),
    ],
)
def test_sectors_match_keywords_as_whole_words_in_vocabulary_order(text: str, sectors: list[str]) -> None:
    assert sectors_detect(text=text) == sectors
