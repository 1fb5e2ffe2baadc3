"""Ids as callers send them: parsed strictly, in one place, for every sub-domain.

A public id (a proposal's, a match's, a conversation's) is a UUID written the way the API
writes it; a numeric id (an event's, a member's) is a positive 64-bit integer written
plainly. Anything else is answered as the schema says: a public id that is not one is "not
found" (like an id naming nothing), a bad numeric parameter a 400 naming it.
"""

from __future__ import annotations

import re
import uuid

from matchplatform.exceptions import ErrorCode, NotFound

# Ids are positive 64-bit integers, written plainly (no sign, no spaces, ASCII digits only):
# the schema says so (minimum 1, maximum ID_MAX), and anything else is a 400 naming the parameter.
ID_MAX = 2**63 - 1
_ID = re.compile(r"[1-9][0-9]{0,18}")

# A public id as the API writes it and the schema declares it (format: uuid): 36 characters,
# hyphens at their places. uuid.UUID alone would also take braces, "urn:uuid:" and no hyphens.
_PUBLIC_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def id_parse(text: str) -> int | None:
    """A positive id from a query string, or None if the text is not one."""
    if _ID.fullmatch(text) is None or int(text) > ID_MAX:
        return None
    return int(text)


def public_id_parse(value: object) -> uuid.UUID:
    """A public id from a URL or a caller; anything that is not one is "not found", like an
    id that names nothing (or something of someone else's)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or _PUBLIC_ID.fullmatch(value) is None:
        raise NotFound("Not found.", code=ErrorCode.NOT_FOUND)
    return uuid.UUID(value)
