from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _quiet_broker(settings):
    # Tests drive the queue directly; only the tests that start real workers wake them.
    settings.OPS_WAKE_WORKERS = False
    settings.RUNS_SUBMIT_RATE = "10000/min"
    settings.AUTH_RATE = "10000/min"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_corpus_cache():
    from runs.engine import corpus_cache

    corpus_cache.clear()
    yield
    corpus_cache.clear()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def staff_client(django_user_model):
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user(username="ops", password="pw-for-tests", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return client
