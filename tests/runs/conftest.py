from __future__ import annotations

import pytest

from flags.models import Flag
from flags.names import MATCH_ENGINE_V1


@pytest.fixture
def engine_on(db) -> None:
    """The run page's flag on for everyone (tests run without migrations, so the data
    migration that creates it does not)."""
    Flag.objects.update_or_create(name=MATCH_ENGINE_V1, defaults={"everyone": True})
