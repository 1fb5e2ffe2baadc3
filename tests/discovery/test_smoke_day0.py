"""manage.py smoke_day0: the runbook's smoke test passes on a seeded database (PostgreSQL here,
and a fresh SQLite file the way `make run` makes it), fails with exit 1 when a step fails, and
leaves nothing of its throwaway member behind either way."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from discovery.models import Candidate, Category, DiscoveryEvent, DiscoveryJob, Interest, LearningEvent, UserInterest
from discovery.services import catalog_seed_day0
from ops.models import QueueHistory

ROOT = Path(__file__).resolve().parents[2]


def _leftovers() -> dict[str, int]:
    smoke = User.objects.filter(username__startswith="smoke-day0-")
    return {
        "members": smoke.count(),
        "interests": UserInterest.objects.filter(user__in=smoke).count(),
        "jobs": DiscoveryJob.objects.count(),
        "events": DiscoveryEvent.objects.count(),
        "decisions": LearningEvent.objects.count(),
        "history": QueueHistory.objects.count(),
    }


@pytest.mark.django_db
def test_it_passes_on_a_seeded_postgresql_database_and_cleans_up():
    catalog_seed_day0()
    before = _leftovers()
    out = io.StringIO()
    call_command("smoke_day0", stdout=out)
    text = out.getvalue()
    steps = [line for line in text.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert [line[:4] for line in steps] == ["PASS"] * 11, text
    for name in ("row security: 8 policies", "seed data: 6 interests", "worker:", "signal and reward:"):
        assert name in text
    assert "PASS  policy health: epsilon_greedy_v1: 1 decisions, 1 rewarded" in text
    assert "smoke_day0: all steps passed" in text
    assert _leftovers() == before == dict.fromkeys(before, 0)


@pytest.mark.django_db
def test_it_fails_with_exit_1_when_the_catalog_is_missing_and_still_cleans_up():
    Candidate.objects.all().delete()
    Category.objects.all().delete()
    Interest.objects.all().delete()
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("smoke_day0", stdout=out)
    assert failed.value.returncode == 1
    text = out.getvalue()
    assert "FAIL  seed data: 0 interests, 0 categories, 0 mappings, 0 candidates" in text
    assert "run manage.py seed_discovery" in text
    assert "FAIL  interests:" in text and "FAIL  policy health: not run" in text
    assert _leftovers() == dict.fromkeys(_leftovers(), 0)


@pytest.mark.slow
def test_it_passes_on_a_fresh_sqlite_database_as_make_run_makes_it(tmp_path):
    """migrate, seed_discovery, smoke_day0 in a new process on a new SQLite file (no
    DATABASE_URL, the in-process cache, the filesystem broker: `make run`'s setup)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CACHE_URL", "CELERY_BROKER_URL")}
    env.update(MATCHPLATFORM_VAR_DIR=str(tmp_path), OPS_WAKE_WORKERS="false", PYTHONDONTWRITEBYTECODE="1")
    script = (
        "import sys, django; from django.core.management import call_command;"
        "django.setup();"
        "call_command('migrate', interactive=False, verbosity=0);"
        "call_command('seed_discovery');"
        "call_command('smoke_day0')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "matchplatform.settings"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIP  row security: row-level security is PostgreSQL-only" in done.stdout
    assert "PASS  policy health:" in done.stdout
    assert "smoke_day0: all steps passed" in done.stdout
    assert (tmp_path / "matchplatform.sqlite3").exists()
