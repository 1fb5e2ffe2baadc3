"""Validation and canonical form of a user-submitted startup URL.

The canonical URL is the identity of a startup in the runs pipeline ("one active run per
canonical URL"), so two spellings of the same page must map to one string, and anything
that could make the fetcher reach inside our own network must be refused here, before a
run row is ever written. The fetcher repeats the network checks after DNS resolution.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote, unquote_plus, urlsplit

from matchplatform.exceptions import ErrorCode, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

URL_MAX_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_KEYS = frozenset({"gclid", "fbclid", "ref"})
# Not covered by the stdlib's is_private, but carrier-grade NAT is still not the internet.
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
# The NAT64 well-known prefix embeds an IPv4 address that a NAT64 gateway would reach.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
# urlsplit silently drops tabs and newlines and strips leading control characters, so a URL
# with them would validate as something other than what the user typed: refuse them.
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f]|\s")
_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
# WHATWG treats a host whose last label is a number as IPv4, so must we: otherwise
# "0x7f.1" would reach 127.0.0.1 through a resolver that is just as lenient.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
# Characters a path or query may keep as typed; "%" is safe so existing escapes survive.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True)
class UrlParts:
    """A validated absolute URL, normalized only as far as the fetcher needs.

    Unlike the canonical form it keeps ``www.``, the trailing slash and every query
    parameter, because the server decides what those mean when we fetch the page.
    """

    scheme: str
    host: str  # lower-case ASCII (punycode), no trailing dot; IP literals in standard form
    port: int | None  # None when it is the scheme's default
    path: str
    query: str
    address: IPAddress | None  # set when the host is an IP literal

    @property
    def port_effective(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS[self.scheme]

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else host

    @property
    def target(self) -> str:
        """The request target for the HTTP request line."""
        return (self.path or "/") + (f"?{self.query}" if self.query else "")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}" + (f"?{self.query}" if self.query else "")


def ip_is_public(*, address: IPAddress) -> bool:
    """Whether an address is on the public internet, i.e. safe for the fetcher to reach."""
    if isinstance(address, ipaddress.IPv6Address):
        # An address that embeds an IPv4 one ends up at that IPv4 address, so judge that.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return ip_is_public(address=embedded)
        if address.is_site_local:
            return False
    elif address in _SHARED_ADDRESS_SPACE:
        return False
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def url_parse(*, url: object, allowed_networks: Iterable[IPNetwork] = ()) -> UrlParts:
    """Validate a URL and split it into normalized parts, or raise ``InvalidInput``.

    ``allowed_networks`` lets IP literals inside those networks through although they are
    not public (the fetcher's allow-list); nothing else is relaxed by it.
    """
    if not isinstance(url, str):
        _reject(code=ErrorCode.INVALID_TYPE, message="URL must be a string.")
    url = url.strip()
    if not url:
        _reject(code=ErrorCode.REQUIRED, message="Enter a URL.")
    if len(url) > URL_MAX_LENGTH:
        _reject(code=ErrorCode.TOO_LONG, message=f"URL must be at most {URL_MAX_LENGTH} characters long.")
    if _UNSAFE_CHARACTERS.search(url):
        _reject(code=ErrorCode.INVALID_URL, message="URL must not contain spaces or control characters.")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows "\ud800") cannot be percent-encoded or stored.
        _reject(code=ErrorCode.INVALID_URL, message="URL contains characters that are not valid text.")
    try:
        split = urlsplit(url)
    except ValueError:
        _reject(code=ErrorCode.INVALID_URL, message="URL is not well formed.")
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        _reject(code=ErrorCode.INVALID_SCHEME, message="URL must start with http:// or https://.")
    if "@" in split.netloc:
        _reject(code=ErrorCode.CREDENTIALS_NOT_ALLOWED, message="URL must not contain a user name or password.")
    if not split.hostname:
        _reject(code=ErrorCode.MISSING_HOST, message="URL must include a host name, like https://example.com.")
    try:
        port = split.port
    except ValueError:
        _reject(code=ErrorCode.INVALID_URL, message="URL has an invalid port.")
    if port == 0:
        _reject(code=ErrorCode.INVALID_URL, message="URL has an invalid port.")
    host, address = _host_normalize(host=split.hostname)
    if address is not None:
        if not ip_is_public(address=address) and not _address_in(address=address, networks=allowed_networks):
            _reject(
                code=ErrorCode.FORBIDDEN_HOST,
                message="URL must not point to a private, local or reserved IP address.",
            )
    elif host == "localhost" or host.endswith(".localhost"):
        _reject(code=ErrorCode.FORBIDDEN_HOST, message="URL must not point to localhost.")
    return UrlParts(
        scheme=scheme,
        host=host,
        port=None if port in (None, _DEFAULT_PORTS[scheme]) else port,
        path=quote(split.path, safe=_PATH_SAFE),
        query=quote(split.query, safe=_QUERY_SAFE),
        address=address,
    )


def url_canonicalize(*, url: object, allowed_networks: Iterable[IPNetwork] = ()) -> str:
    """The one string that identifies a startup page, or ``InvalidInput`` with a code.

    Canonical form: lower-case scheme and host, punycode, no ``www.``, no default port, no
    fragment, no tracking parameters, remaining query sorted, no trailing slash.
    """
    parts = url_parse(url=url, allowed_networks=allowed_networks)
    host = parts.host
    # "www.com" is a registrable name in its own right; only strip www. from a subdomain.
    if host.startswith("www.") and "." in host[4:]:
        host = host[4:]
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    query = _query_canonicalize(query=parts.query)
    canonical = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}" + (f"?{query}" if query else "")
    # Percent-encoding can make the canonical form longer than what was typed.
    if len(canonical) > URL_MAX_LENGTH:
        _reject(code=ErrorCode.TOO_LONG, message=f"URL must be at most {URL_MAX_LENGTH} characters long.")
    return canonical


def _reject(*, code: ErrorCode, message: str) -> NoReturn:
    raise InvalidInput(message, code=code, fields={"url": [message]})


def _address_in(*, address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for network in networks for candidate in candidates)


def _host_normalize(*, host: str) -> tuple[str, IPAddress | None]:
    """Lower-case, punycode, validated host, plus its address when it is an IP literal."""
    host = host.lower()
    if ":" in host:
        # urlsplit has already checked that a bracketed host is an IPv6 address.
        try:
            address6 = ipaddress.IPv6Address(host)
        except ValueError:
            _reject(code=ErrorCode.INVALID_URL, message="URL has an invalid IPv6 address.")
        if address6.scope_id:
            _reject(code=ErrorCode.INVALID_URL, message="URL must not contain an IPv6 zone.")
        if address6.ipv4_mapped is not None:
            # One spelling per endpoint: ::ffff:a.b.c.d is printed differently across Pythons.
            return str(address6.ipv4_mapped), address6.ipv4_mapped
        return str(address6), address6
    if host.endswith("."):
        host = host[:-1]
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        _reject(code=ErrorCode.INVALID_URL, message="URL has an invalid host name.")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            address4 = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            _reject(code=ErrorCode.INVALID_URL, message="URL has an invalid IP address.")
        return str(address4), address4
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        _reject(code=ErrorCode.INVALID_URL, message="URL has an invalid host name.")
    return host, None


def _query_canonicalize(*, query: str) -> str:
    pairs: list[tuple[str, str, str]] = []
    for segment in query.split("&"):
        if not segment:
            continue
        key, _, value = segment.partition("=")
        name = unquote_plus(key).strip().lower()
        if name.startswith("utm_") or name in _TRACKING_KEYS:
            continue
        pairs.append((key, value, segment))
    return "&".join(segment for _, _, segment in sorted(pairs))
