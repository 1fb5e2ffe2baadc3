"""Sign-In with Ethereum (EIP-4361) for members: nonces, the message parser, sign-in.

Trust: the only address this module ever acts on is the one recovered from the signature
(and required to equal the message's). Nothing a client says about its address directly
is believed.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address, to_checksum_address

from matchplatform.exceptions import ErrorCode, Forbidden, InvalidInput

# Far above any real message (the statement and resources are short); bounds the work a
# hostile client can ask of the parser.
MESSAGE_MAX_CHARS = 8192

_NONCE_ALPHABET = string.ascii_letters + string.digits
# 22 characters of 62 symbols: ~131 bits, above EIP-4361's 96-bit floor.
_NONCE_LENGTH = 22

# --- RFC 3986 / RFC 3339 / EIP-4361 grammar, as regular expressions -----------------------
# Explicit ASCII classes throughout: ``\d`` and ``\s`` would admit Unicode.
_HEX = "0-9A-Fa-f"
_PCT = f"%[{_HEX}]{{2}}"
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCHAR = f"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SEGMENT = f"{_PCHAR}*"
_SEGMENT_NZ = f"{_PCHAR}+"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"

_URI_RE = re.compile(
    rf"(?P<scheme>{_SCHEME}):"
    rf"(?:"
    rf"//(?P<authority>[^/?#]*)(?:/{_SEGMENT})*"  # "//" authority path-abempty
    rf"|(?:/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"  # path-absolute
    rf"|{_SEGMENT_NZ}(?:/{_SEGMENT})*"  # path-rootless
    rf")?"  # path-empty
    rf")"
    rf"(?:\?{_QUERY})?(?:#{_QUERY})?"
)
_AUTHORITY_RE = re.compile(
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"  # userinfo
    rf"(?:\[(?P<ip_literal>[^\]]*)\]|(?P<reg_name>(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*))"
    rf"(?::[0-9]*)?"
)
_IPV_FUTURE_RE = re.compile(rf"[vV][{_HEX}]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+")

_HEADER_RE = re.compile(
    rf"(?:(?P<scheme>{_SCHEME})://)?(?P<domain>[^ ]+) wants you to sign in with your Ethereum account:"
)
_ADDRESS_RE = re.compile(r"0x[0-9A-Fa-f]{40}")
_STATEMENT_RE = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@ ]+")
_CHAIN_ID_RE = re.compile(r"[0-9]{1,78}")  # a uint256 has at most 78 decimal digits
_NONCE_RE = re.compile(r"[A-Za-z0-9]{8,}")
_REQUEST_ID_RE = re.compile(f"{_PCHAR}*")
_DATE_TIME_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))"
)
_SIGNATURE_RE = re.compile(r"0x[0-9A-Fa-f]{130}")
_VERSION_RE = re.compile("1")

_HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None
    not_before: datetime | None
    scheme: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()


def _malformed(reason: str) -> InvalidInput:
    return InvalidInput(f"The sign-in message is malformed: {reason}.", code=ErrorCode.SIWE_MALFORMED)


def _authority_valid(text: str, *, host_required: bool) -> bool:
    match = _AUTHORITY_RE.fullmatch(text)
    if match is None:
        return False
    literal = match.group("ip_literal")
    if literal is not None:
        if _IPV_FUTURE_RE.fullmatch(literal):
            return True
        if "%" in literal:  # RFC 3986 has no IPv6 zone identifiers
            return False
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return False
        return True
    return bool(match.group("reg_name")) or not host_required


def _uri_valid(text: str) -> bool:
    match = _URI_RE.fullmatch(text)
    if match is None:
        return False
    authority = match.group("authority")
    return authority is None or _authority_valid(authority, host_required=False)


def _date_time_parse(text: str, *, field: str) -> datetime:
    match = _DATE_TIME_RE.fullmatch(text)
    if match is None:
        raise _malformed(f"{field} is not an RFC 3339 date-time")
    parts = match.groupdict()
    second = int(parts["second"])
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    microsecond = int(fraction)
    if second == 60:
        # A leap second: RFC 3339 allows it, datetime cannot hold it.
        second, microsecond = 59, 999_999
    if parts["utc"]:
        tz = UTC
    else:
        off_hour, off_minute = int(parts["off_hour"]), int(parts["off_minute"])
        if off_hour > 23 or off_minute > 59:
            raise _malformed(f"{field} has an invalid time offset")
        offset = timedelta(hours=off_hour, minutes=off_minute)
        tz = dt_timezone(-offset if parts["sign"] == "-" else offset)
    try:
        return datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            second,
            microsecond,
            tzinfo=tz,
        )
    except ValueError:
        raise _malformed(f"{field} is not a valid date-time") from None


def _tagged(lines: list[str], index: int, tag: str) -> str | None:
    """The value of line ``index`` if it starts with ``tag``, else None."""
    if index < len(lines) and lines[index].startswith(tag):
        return lines[index][len(tag) :]
    return None


def siwe_message_parse(*, message: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly: the exact line layout of the ABNF, LF line ends,
    no trailing newline, an EIP-55 checksummed address. Anything else is ``siwe_malformed``."""
    if not isinstance(message, str) or not message:
        raise _malformed("it is empty")
    if len(message) > MESSAGE_MAX_CHARS:
        raise _malformed(f"it is longer than {MESSAGE_MAX_CHARS} characters")
    lines = message.split("\n")

    header = _HEADER_RE.fullmatch(lines[0])
    if header is None:
        raise _malformed(f"the first line must be '<domain>{_HEADER_SUFFIX}'")
    domain = header.group("domain")
    if not _authority_valid(domain, host_required=True):
        raise _malformed("the domain is not a valid RFC 3986 authority")

    if len(lines) < 5:
        raise _malformed("it is too short")
    address = lines[1]
    if not _ADDRESS_RE.fullmatch(address):
        raise _malformed("the second line must be a 0x-prefixed 40-digit hex address")
    if not is_checksum_address(address):
        raise _malformed("the address is not in EIP-55 checksum form")
    if lines[2] != "":
        raise _malformed("an empty line must follow the address")

    # With a statement: address, "", statement, "", URI. Without: address, "", "", URI.
    statement: str | None = None
    index = 4
    if lines[3] != "":
        statement = lines[3]
        if not _STATEMENT_RE.fullmatch(statement):
            raise _malformed("the statement has characters EIP-4361 does not allow")
        if lines[4] != "":
            raise _malformed("an empty line must follow the statement")
        index = 5

    def required(tag: str, pattern: re.Pattern[str], what: str) -> str:
        nonlocal index
        value = _tagged(lines, index, tag)
        if value is None:
            raise _malformed(f"expected '{tag}...' on line {index + 1}")
        if not pattern.fullmatch(value):
            raise _malformed(f"{what} is not valid")
        index += 1
        return value

    uri = _tagged(lines, index, "URI: ")
    if uri is None:
        raise _malformed(f"expected 'URI: ...' on line {index + 1}")
    if not _uri_valid(uri):
        raise _malformed("the URI is not a valid RFC 3986 URI")
    index += 1
    version = required("Version: ", _VERSION_RE, "the version (only 1 exists)")
    chain_id = int(required("Chain ID: ", _CHAIN_ID_RE, "the chain ID"))
    nonce = required("Nonce: ", _NONCE_RE, "the nonce (8 or more letters and digits)")
    issued_raw = _tagged(lines, index, "Issued At: ")
    if issued_raw is None:
        raise _malformed(f"expected 'Issued At: ...' on line {index + 1}")
    issued_at = _date_time_parse(issued_raw, field="Issued At")
    index += 1

    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: list[str] = []
    if (value := _tagged(lines, index, "Expiration Time: ")) is not None:
        expiration_time = _date_time_parse(value, field="Expiration Time")
        index += 1
    if (value := _tagged(lines, index, "Not Before: ")) is not None:
        not_before = _date_time_parse(value, field="Not Before")
        index += 1
    if (value := _tagged(lines, index, "Request ID: ")) is not None:
        if not _REQUEST_ID_RE.fullmatch(value):
            raise _malformed("the request ID is not valid")
        request_id = value
        index += 1
    if index < len(lines) and lines[index] == "Resources:":
        index += 1
        while index < len(lines) and lines[index].startswith("- "):
            resource = lines[index][2:]
            if not _uri_valid(resource):
                raise _malformed(f"resource {len(resources) + 1} is not a valid RFC 3986 URI")
            resources.append(resource)
            index += 1
    if index != len(lines):
        raise _malformed(f"unexpected content on line {index + 1}")

    return SiweMessage(
        domain=domain,
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration_time,
        not_before=not_before,
        scheme=header.group("scheme"),
        request_id=request_id,
        resources=tuple(resources),
    )


def _signer_recover(*, message: str, signature: str) -> str | None:
    if not isinstance(signature, str) or not _SIGNATURE_RE.fullmatch(signature):
        return None
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:
        # Whatever recovery trips on (bad v, r or s, a point off the curve) is a bad signature.
        return None
    return str(to_checksum_address(signer))


def _times_check(*, parsed: SiweMessage) -> None:
    now = timezone.now()
    skew = timedelta(seconds=settings.SIWE_CLOCK_SKEW_SECONDS)
    if parsed.issued_at > now + skew:
        raise Forbidden("The message was issued in the future.", code=ErrorCode.SIWE_ISSUED_IN_FUTURE)
    if parsed.not_before is not None and parsed.not_before > now + skew:
        raise Forbidden("The message is not valid yet.", code=ErrorCode.SIWE_NOT_YET_VALID)
    if parsed.expiration_time is not None and parsed.expiration_time <= now:
        raise Forbidden("The message has expired.", code=ErrorCode.SIWE_MESSAGE_EXPIRED)


def siwe_verify(*, message: str, signature: str, domain: str) -> tuple[SiweMessage, str]:
    """A signed EIP-4361 message checked: well-formed, made for ``domain`` (the host the
    request reached, never a value from the message), within its times, and signed by the
    address it names. Returns the message and that (checksummed) address. Checks the
    message only: whether its nonce was issued and is unused is the sign-in's to decide."""
    parsed = siwe_message_parse(message=message)
    if parsed.domain.lower() != domain.lower():
        raise Forbidden("The message was made for another site.", code=ErrorCode.SIWE_DOMAIN)
    _times_check(parsed=parsed)
    signer = _signer_recover(message=message, signature=signature)
    if signer is None or signer != to_checksum_address(parsed.address):
        raise Forbidden("The signature does not match the message's address.", code=ErrorCode.SIWE_BAD_SIGNATURE)
    return parsed, signer


def nonce_new() -> str:
    """A fresh random nonce (letters and digits, as EIP-4361 allows)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(_NONCE_LENGTH))
