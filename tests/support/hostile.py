"""Request bodies an attacker or a broken client sends: every write endpoint must answer them
with a 4xx in the error shape, never a 5xx.

Kept as raw bytes: several of them (lone surrogates, invalid UTF-8, NUL) cannot be built by
``json.dumps`` from Python values the way a hostile client writes them.
"""

from __future__ import annotations

# Fixed bodies, whatever the endpoint takes.
HOSTILE_BODIES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \r\n\t ",
    "null": b"null",
    "a bare string": b'"yes"',
    "a bare number": b"0",
    "a list": b"[]",
    "a list of objects": b'[{"url": "https://a.example"}]',
    "not json": b"url=https://a.example&choice=yes",
    "truncated json": b'{"url": "https://a.example"',
    "NaN": b'{"x": NaN}',
    "Infinity": b'{"x": Infinity}',
    "a number past a double": b'{"x": 1e400}',
    "a 1000-digit integer": b'{"x": ' + b"9" * 1000 + b"}",
    "a byte order mark": b'\xef\xbb\xbf{"x": 1}',
    "invalid utf-8": b'{"x": "\xff\xfe\xfd"}',
    "overlong utf-8": b'{"x": "\xc0\xaf"}',
    "a lone high surrogate": b'{"x": "\\ud800"}',
    "a lone low surrogate": b'{"x": "\\udfff"}',
    "a NUL in a string": b'{"x": "a\\u0000b"}',
    "a NUL byte": b'{"x": "a\x00b"}',
    "duplicate keys": b'{"x": 1, "x": 2}',
    "a deep array": b"[" * 100_000 + b"]" * 100_000,
    "a deep object": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "deep but under the limit": b'{"a":' * 30 + b"1" + b"}" * 30,
    "a huge body": b'{"x": "' + b"a" * (3 * 1024 * 1024) + b'"}',
    "a long string": b'{"x": "' + b"a" * 60_000 + b'"}',
    "many keys": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(5_000)) + b"}",
}

# Values put into each field the endpoint's schema names (so validation, not parsing, meets them).
HOSTILE_VALUES: dict[str, bytes] = {
    "a lone surrogate": b'"\\udfff"',
    "a lone high surrogate then text": b'"\\ud800abc"',
    "a NUL": b'"\\u0000"',
    "an empty string": b'""',
    "zero": b"0",
    "a negative number": b"-1",
    "a float": b"0.5",
    "a huge integer": b"123456789012345678901234567890",
    "true": b"true",
    "null": b"null",
    "a list": b'["yes"]',
    "an object": b'{"a": 1}',
    "a long string": b'"' + b"x" * 20_000 + b'"',
    "right-to-left and zero-width": b'"\\u202e\\u200b\\ufeff"',
    "html": b'"<script>alert(1)</script>"',
    "sql": b'"\'; DROP TABLE auth_user; --"',
    "a path": b'"../../../../etc/passwd"',
}


def field_bodies(*, fields: list[str]) -> dict[str, bytes]:
    """For each field and each hostile value, a body with that field set to it (the others left out)."""
    return {
        f"{field} = {label}": b'{"' + field.encode() + b'": ' + value + b"}"
        for field in fields
        for label, value in HOSTILE_VALUES.items()
    }
