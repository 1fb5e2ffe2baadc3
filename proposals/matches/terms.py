"""The feed's vocabulary: what its query string may say, and the rule for what a member
sees as a match's status. Shared by the parser, the cursor, the statement and the cards."""

from __future__ import annotations

from datetime import datetime

from matchplatform.exceptions import ErrorCode, InvalidInput
from proposals.models import MatchSource, MatchStatus

SORTS = ("newest", "compatibility", "expiring_soon")
STATUSES = tuple(s.value for s in MatchStatus)
SOURCES = tuple(s.value for s in MatchSource)
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
CURSOR_MAX_CHARS = 300
PARAMETERS = ("status", "event", "source", "min_compatibility", "sort", "cursor", "page_size")

ACCEPTED = MatchStatus.ACCEPTED
PENDING = MatchStatus.PENDING
STATUS_PATTERN = "^(" + "|".join(STATUSES) + ")(,(" + "|".join(STATUSES) + "))*$"


def bad_parameter(parameter: str, message: str) -> InvalidInput:
    """A 400 naming the query parameter and what it allows."""
    return InvalidInput(message, code=ErrorCode.INVALID_PARAMETER, fields={parameter: [message]})


def status_shown(item_status: str, expires_at: datetime, now: datetime) -> str:
    return MatchStatus.EXPIRED if item_status == PENDING and expires_at <= now else item_status
