"""Fetch a startup's page and read a small profile (name, description, sectors) from it.

The URL comes from an anonymous user, so this module is an SSRF boundary. Every hop is
validated like a submitted URL, its host is resolved once and refused if any address is
not public (unless allow-listed), and the connection goes to that vetted address: a second
lookup by http.client could be answered differently (DNS rebinding). No proxy from the
environment is used, for the same reason. Stdlib only, so the boundary is all in view.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from matchplatform.exceptions import ApplicationError, ErrorCode, InvalidInput
from runs.canonical import IPAddress, IPNetwork, UrlParts, ip_is_public, url_canonicalize, url_parse
from runs.vocab import SECTOR_KEYWORDS, SECTORS

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_READ_CHUNK_BYTES = 64 * 1024
_USER_AGENT = "matchplatform-fetch/1.0"
_SECTOR_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (
        sector,
        re.compile(
            r"(?<!\w)(?:"
            + "|".join(re.escape(keyword).replace(r"\ ", r"\s+") for keyword in SECTOR_KEYWORDS[sector])
            + r")(?!\w)",
            re.IGNORECASE,
        ),
    )
    for sector in SECTORS
    if sector in SECTOR_KEYWORDS
)
# Hyphens split a title only when spaced, so "e-commerce" or "Coca-Cola" stay whole.
_TITLE_SEPARATORS = re.compile("\\s*[|\u00b7\u2022\u00bb]\\s*|\\s+[-\u2013\u2014]\\s+|:\\s+")


@dataclass(frozen=True)
class PageProfile:
    name: str
    description: str
    sectors: list[str]  # from SECTOR_KEYWORDS, ordered as in SECTORS
    final_url: str  # canonical form of the URL the page was finally served from


# How the resolver says a name has no address (NXDOMAIN, no A/AAAA record): the input's
# fault, for good. EAI_AGAIN (the resolver timed out or failed) and the rest are ours.
_NAME_UNKNOWN = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name)
)


class FetchError(ApplicationError):
    """A page that could not be fetched. ``message`` is the operators' detail (logs, queue
    history, the staff debug view); ``public`` says what is wrong with the submitted URL in
    words anyone may read, never how internal names resolve.

    ``retryable`` False is a permanent input error (a host that does not resolve or points
    inside, a 404, a PDF: a retry will not change it); its code is one of the refused-input
    codes. Retryable failures (timeouts, 5xx, a refused connection) are ``unavailable``."""

    code = ErrorCode.UNAVAILABLE
    default_message = "The page could not be fetched."

    def __init__(
        self,
        message: str | None = None,
        *,
        retryable: bool = True,
        code: ErrorCode | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message, code=code or (ErrorCode.UNAVAILABLE if retryable else ErrorCode.FETCH_FAILED))
        self.retryable = retryable
        self.public = public or self.default_message


def page_fetch(*, url: str) -> PageProfile:
    """Fetch ``url`` (following redirects) and read a profile from the HTML, or raise FetchError.

    ``RUNS_FETCH_TIMEOUT_SECONDS`` bounds the whole fetch, redirects included, except the
    DNS lookups, which the stdlib cannot interrupt.
    """
    allowed = _networks_allowed()
    deadline = _Deadline(seconds=float(settings.RUNS_FETCH_TIMEOUT_SECONDS))
    max_bytes = int(settings.RUNS_FETCH_MAX_BYTES)
    max_redirects = int(settings.RUNS_FETCH_MAX_REDIRECTS)

    parts = _url_vet(url=url, allowed=allowed, refusal=f"refusing to fetch {url}", public="")
    redirects = 0
    while True:
        response = _response_get(parts=parts, allowed=allowed, deadline=deadline, max_bytes=max_bytes)
        if response.location is None:
            break
        if redirects >= max_redirects:
            raise FetchError(
                f"too many redirects fetching {url}: gave up after {max_redirects}",
                retryable=False,
                public=f"The page at {url} redirects more than {max_redirects} times.",
            )
        redirects += 1
        target = urljoin(str(parts), response.location)
        parts = _url_vet(
            url=target,
            allowed=allowed,
            refusal=f"refusing to follow the redirect from {parts} to {target}",
            public=f"The page at {parts} redirects to a URL that cannot be fetched: ",
        )

    return _profile_extract(
        html=_body_decode(body=response.body, charset=response.charset),
        host=parts.host,
        final_url=url_canonicalize(url=str(parts), allowed_networks=allowed),
    )


# --- network -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    location: str | None  # set for a redirect, whose body is never read
    body: bytes = b""
    charset: str | None = None


class _Deadline:
    def __init__(self, *, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            # The same exception a socket timeout raises, so one handler reports both.
            raise TimeoutError("deadline exceeded")
        return left


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to addresses vetted in advance, never to a fresh DNS answer."""

    def __init__(self, *, parts: UrlParts, addresses: list[_Address], deadline: _Deadline) -> None:
        super().__init__(parts.host, parts.port_effective, timeout=deadline.remaining())
        self._addresses = addresses
        self._deadline = deadline
        # http.client drops self.sock once a response will close, but the body is still read
        # through it, so keep our own handle to move the deadline forward on every read.
        self.pinned_sock: socket.socket | None = None

    def connect(self) -> None:
        self.sock = self.pinned_sock = _socket_open(addresses=self._addresses, deadline=self._deadline)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        raw = self.pinned_sock = _socket_open(addresses=self._addresses, deadline=self._deadline)
        try:
            # SNI and certificate checks use the name from the URL, not the address we dialled.
            self.sock = self.pinned_sock = _tls_context().wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


@dataclass(frozen=True)
class _Address:
    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]
    ip: IPAddress


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _networks_allowed() -> tuple[IPNetwork, ...]:
    raw = settings.RUNS_FETCH_ALLOWED_NETWORKS
    entries = raw.split(",") if isinstance(raw, str) else list(raw)
    networks: list[IPNetwork] = []
    for entry in entries:
        if not str(entry).strip():
            continue
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"RUNS_FETCH_ALLOWED_NETWORKS: {entry!r} is not a network") from exc
    return tuple(networks)


def _address_allowed(*, address: IPAddress, allowed: tuple[IPNetwork, ...]) -> bool:
    if ip_is_public(address=address):
        return True
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for network in allowed for candidate in candidates)


def _url_vet(*, url: str, allowed: tuple[IPNetwork, ...], refusal: str, public: str) -> UrlParts:
    try:
        return url_parse(url=url, allowed_networks=allowed)
    except InvalidInput as exc:
        raise FetchError(
            f"{refusal}: {exc.message}", retryable=False, code=ErrorCode(exc.code), public=public + exc.message
        ) from exc


def _addresses_resolve(*, parts: UrlParts, allowed: tuple[IPNetwork, ...]) -> list[_Address]:
    port = parts.port_effective
    resolved: list[tuple[socket.AddressFamily, tuple[Any, ...]]]
    if parts.address is not None:
        ip: IPAddress = parts.address
        if isinstance(ip, ipaddress.IPv4Address):
            resolved = [(socket.AF_INET, (str(ip), port))]
        else:
            resolved = [(socket.AF_INET6, (str(ip), port, 0, 0))]
    else:
        try:
            infos = socket.getaddrinfo(parts.host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            detail = f"could not resolve the host {parts.host} of {parts}: {reason}"
            if isinstance(exc, socket.gaierror) and exc.errno not in _NAME_UNKNOWN:
                # The resolver failed, not the name: a platform error, worth a retry.
                raise FetchError(detail, public=f"The host {parts.host} could not be looked up just now.") from exc
            raise FetchError(
                detail, retryable=False, code=ErrorCode.HOST_UNRESOLVABLE, public=_unresolvable(parts.host)
            ) from exc
        resolved = [(info[0], info[4]) for info in infos]

    addresses: list[_Address] = []
    for family, sockaddr in resolved:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        # One internal answer refuses the whole host rather than filtering it out: a public
        # name pointing inside is misconfigured or hostile, and either way not a startup page.
        if not _address_allowed(address=ip, allowed=allowed):
            # The address stays in the log: the run's error is shown to anonymous users, and
            # how internal names resolve is not theirs to learn.
            logger.info("refused %s: %s resolves to non-public %s", parts, parts.host, ip)
            # The caller reads the same code and words as for a name that does not exist:
            # different answers would let anyone probe which internal names resolve.
            raise FetchError(
                f"refusing to fetch {parts}: the host resolves to a non-public address",
                retryable=False,
                code=ErrorCode.HOST_UNRESOLVABLE,
                public=_unresolvable(parts.host),
            )
        if all(existing.sockaddr != sockaddr for existing in addresses):
            addresses.append(_Address(family=socket.AddressFamily(family), sockaddr=tuple(sockaddr), ip=ip))
    if not addresses:
        raise FetchError(
            f"could not resolve the host {parts.host} of {parts}: no addresses",
            retryable=False,
            code=ErrorCode.HOST_UNRESOLVABLE,
            public=_unresolvable(parts.host),
        )
    return addresses


def _unresolvable(host: str) -> str:
    return f"The host {host} does not resolve to a public address."


def _socket_open(*, addresses: list[_Address], deadline: _Deadline) -> socket.socket:
    last_error: OSError | None = None
    for address in addresses:
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(address.sockaddr)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    raise last_error or OSError("no address to connect to")


def _response_get(*, parts: UrlParts, allowed: tuple[IPNetwork, ...], deadline: _Deadline, max_bytes: int) -> _Response:
    addresses = _addresses_resolve(parts=parts, allowed=allowed)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection: _PinnedHTTPConnection | None = None
    expired = threading.Event()

    def _abort() -> None:
        # A socket timeout bounds each read, not the exchange: a server trickling the TLS
        # handshake or the headers a byte at a time would hold the worker. At the deadline
        # the socket is shut down under whatever read is blocked on it.
        expired.set()
        sock = connection.pinned_sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(deadline.remaining(), _abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection = connection_class(parts=parts, addresses=addresses, deadline=deadline)
        connection.request(
            "GET",
            parts.target,
            headers={
                "User-Agent": _USER_AGENT,
                "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                "Accept-Encoding": "identity",
                "Connection": "close",
            },
        )
        sock = connection.pinned_sock
        if sock is None:
            raise OSError("the connection was not opened")
        sock.settimeout(deadline.remaining())
        response = connection.getresponse()
        try:
            return _response_read(
                response=response,
                sock=sock,
                parts=parts,
                deadline=deadline,
                max_bytes=max_bytes,
            )
        finally:
            response.close()
    except FetchError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        # At the deadline the watchdog shut the socket down: whatever the read then raised,
        # the failure is the timeout.
        failure: BaseException = TimeoutError("deadline exceeded") if expired.is_set() else exc
        detail, public = _network_error_describe(exc=failure, parts=parts, deadline=deadline)
        raise FetchError(detail, public=public) from exc
    finally:
        watchdog.cancel()
        if connection is not None:
            connection.close()


def _response_read(
    *,
    response: http.client.HTTPResponse,
    sock: socket.socket,
    parts: UrlParts,
    deadline: _Deadline,
    max_bytes: int,
) -> _Response:
    location = response.getheader("Location")
    if response.status in _REDIRECT_STATUSES and location:
        return _Response(location=location.strip())
    if not 200 <= response.status < 300:
        raise FetchError(
            f"HTTP {response.status} from {parts}",
            retryable=response.status >= 500 or response.status in (408, 429),
            public=f"The page at {parts} answered HTTP {response.status}.",
        )

    # A missing Content-Type is let through (parsing bytes as HTML is harmless); a declared
    # non-HTML one is refused before a byte of the body is read.
    if response.getheader("Content-Type") is not None:
        content_type = response.headers.get_content_type()
        if content_type not in _HTML_TYPES:
            raise FetchError(
                f"{parts} is not an HTML page (content type {content_type})",
                retryable=False,
                public=f"The page at {parts} is not an HTML page (it is {content_type}).",
            )

    declared = (response.getheader("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(parts=parts, max_bytes=max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        sock.settimeout(deadline.remaining())
        chunk = response.read1(_READ_CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        # Stop at the first byte past the cap: a hostile server may never end its body.
        if size > max_bytes:
            raise _too_large(parts=parts, max_bytes=max_bytes)
        chunks.append(chunk)
    if response.length:
        # read1 reports a connection closed before Content-Length bytes as a plain end of
        # body; a truncated page must not pass for a whole one.
        raise http.client.IncompleteRead(b"".join(chunks), response.length)
    body = _body_inflate(
        body=b"".join(chunks),
        encoding=(response.getheader("Content-Encoding") or "").strip().lower(),
        parts=parts,
        max_bytes=max_bytes,
    )
    return _Response(location=None, body=body, charset=response.headers.get_content_charset())


def _body_inflate(*, body: bytes, encoding: str, parts: UrlParts, max_bytes: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(
            f"{parts} sent an unsupported content encoding {encoding}",
            retryable=False,
            public=f"The page at {parts} uses a content encoding we cannot read ({encoding}).",
        )
    # We asked for identity, but some servers compress anyway; the cap applies to the
    # inflated size too, so a small compressed bomb cannot blow up memory.
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise FetchError(
            f"{parts} sent a corrupt {encoding} body", public=f"The page at {parts} sent a corrupt {encoding} body."
        ) from exc
    if len(inflated) > max_bytes:
        raise _too_large(parts=parts, max_bytes=max_bytes)
    return inflated


def _too_large(*, parts: UrlParts, max_bytes: int) -> FetchError:
    return FetchError(
        f"page at {parts} is larger than {max_bytes} bytes",
        retryable=False,
        public=f"The page at {parts} is larger than {max_bytes} bytes.",
    )


def _network_error_describe(*, exc: BaseException, parts: UrlParts, deadline: _Deadline) -> tuple[str, str]:
    """(the operators' detail, the public words) for a network failure."""
    if isinstance(exc, TimeoutError):
        text = f"timed out after {deadline.seconds:g} s fetching {parts}"
        return text, f"The page at {parts} did not answer within {deadline.seconds:g} s."
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"connection refused by {parts.netloc} fetching {parts}",
            f"The server at {parts.netloc} refused the connection.",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate of {parts.host} is not valid: {exc.verify_message or exc.reason}",
            f"The TLS certificate of {parts.host} is not valid.",
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS error talking to {parts.netloc}: {exc.reason or exc}", f"TLS with {parts.netloc} failed."
    if isinstance(exc, http.client.RemoteDisconnected):
        text = f"{parts.netloc} closed the connection without answering"
        return text, f"The server at {text}."
    if isinstance(exc, http.client.HTTPException):
        return (
            f"invalid HTTP response from {parts}: {type(exc).__name__}",
            f"The server at {parts.netloc} sent an invalid HTTP response.",
        )
    if isinstance(exc, OSError):
        return f"network error fetching {parts}: {exc.strerror or exc}", f"The page at {parts} could not be reached."
    return f"could not fetch {parts}", f"The page at {parts} could not be reached."


def _body_decode(*, body: bytes, charset: str | None) -> str:
    encoding = "utf-8"
    if charset:
        # An unknown charset label falls back to UTF-8 rather than failing the fetch.
        with contextlib.suppress(LookupError):
            encoding = codecs.lookup(charset).name
    return body.decode(encoding, errors="replace")


# --- extraction ----------------------------------------------------------------------------


class _ProfileParser(HTMLParser):
    """Collects the first <title>, the meta tags we use and the first non-empty <p>."""

    _SKIPPED = frozenset({"script", "style", "noscript", "template"})
    # Tags that end an unclosed <p>, so a page without </p> does not yield the whole body.
    _BLOCKS = frozenset(
        {"p", "div", "section", "article", "header", "footer", "nav", "main", "aside", "ul", "ol", "table"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "form", "blockquote", "pre", "hr", "body"}
    )
    _META_KEYS = frozenset({"description", "og:description", "og:site_name"})
    _COLLECT_LIMIT = 4 * DESCRIPTION_MAX_LENGTH

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: str | None = None
        self.paragraph: str | None = None
        self._skip_depth = 0
        self._svg_depth = 0
        self._title_parts: list[str] | None = None
        self._paragraph_parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skip_depth += 1
        elif tag == "svg":
            # Inline icons carry their own <title>, which is not the page's.
            self._svg_depth += 1
        elif tag == "title" and self.title is None and not self._svg_depth:
            self._title_parts = []
        elif tag == "meta":
            values = {key: value or "" for key, value in attrs}
            key = (values.get("property") or values.get("name") or "").strip().lower()
            content = _whitespace_collapse(values.get("content", ""))
            if key in self._META_KEYS and content and key not in self.meta:
                self.meta[key] = content
        if tag in self._BLOCKS:
            self._paragraph_finish()
        if tag == "p" and self.paragraph is None:
            self._paragraph_parts = []

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "svg":
            self._svg_depth = max(0, self._svg_depth - 1)
        elif tag == "title" and self._title_parts is not None:
            self.title = _whitespace_collapse("".join(self._title_parts))
            self._title_parts = None
        if tag in self._BLOCKS:
            self._paragraph_finish()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._title_parts is not None:
            self._title_parts.append(data)
        elif self._paragraph_parts is not None and sum(map(len, self._paragraph_parts)) < self._COLLECT_LIMIT:
            self._paragraph_parts.append(data)

    def _paragraph_finish(self) -> None:
        if self._paragraph_parts is None:
            return
        text = _whitespace_collapse("".join(self._paragraph_parts))
        self._paragraph_parts = None
        if text:
            self.paragraph = text

    def close(self) -> None:
        super().close()
        self._paragraph_finish()


def _profile_extract(*, html: str, host: str, final_url: str) -> PageProfile:
    parser = _ProfileParser()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        # html.parser gives up on a few malformed constructs (e.g. "<![bogus["); what was
        # read before that point is still a fine profile.
        pass
    title = parser.title or ""
    site_host = host[4:] if host.startswith("www.") else host
    name = parser.meta.get("og:site_name") or _title_name(title=title, host=site_host) or site_host
    description = parser.meta.get("description") or parser.meta.get("og:description") or parser.paragraph or ""
    name = _text_truncate(text=name, limit=NAME_MAX_LENGTH)
    description = _text_truncate(text=description, limit=DESCRIPTION_MAX_LENGTH)
    return PageProfile(
        name=name,
        description=description,
        sectors=sectors_detect(text=f"{name}\n{description}\n{title}"),
        final_url=final_url,
    )


def sectors_detect(*, text: str) -> list[str]:
    """Sectors whose keywords occur in ``text`` as whole words, ordered as in SECTORS."""
    return [sector for sector, pattern in _SECTOR_PATTERNS if pattern.search(text)]


def _title_name(*, title: str, host: str) -> str:
    """The site's name from a title like "Pricing | Acme" or "Acme - Payments for robots"."""
    segments = [segment for segment in _TITLE_SEPARATORS.split(title) if segment.strip()]
    if len(segments) <= 1:
        return title.strip()
    labels = host.split(".")
    host_words = [_alnum(label) for label in (labels[:-1] or labels) if len(_alnum(label)) >= 3]
    for segment in segments:
        compact = _alnum(segment)
        if len(compact) >= 3 and any(word in compact or compact in word for word in host_words):
            return segment.strip()
    return segments[0].strip()


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _whitespace_collapse(text: str) -> str:
    return " ".join(text.split())


def _text_truncate(*, text: str, limit: int) -> str:
    text = _whitespace_collapse(text)
    return text if len(text) <= limit else text[:limit].rstrip()
