from __future__ import annotations

import pytest
from waffle.models import Switch
from waffle.testutils import override_flag, override_switch

from flags.models import Flag
from flags.names import MATCH_ENGINE_V1, SAFE_MODE
from flags.services import safe_mode_active

pytestmark = pytest.mark.django_db


def test_the_migration_creates_the_flag_on_and_safe_mode_off():
    assert Flag.objects.get(name=MATCH_ENGINE_V1).everyone is True
    assert Switch.objects.get(name=SAFE_MODE).active is False


def test_the_run_page_follows_the_match_engine_flag(client):
    assert 'name="url"' in client.get("/").content.decode()
    with override_flag(MATCH_ENGINE_V1, active=False):
        page = client.get("/").content.decode()
    assert "not enabled" in page.lower()
    assert 'name="url"' not in page


def test_safe_mode_is_readable_without_a_request_and_shows_in_health(client):
    assert safe_mode_active() is False
    with override_switch(SAFE_MODE, active=True):
        assert safe_mode_active() is True
        assert client.get("/api/health").json()["safe_mode"] is True
