"""Request metrics on SQLite (the zero-configuration `make run` database): the flush's
upsert increments the same rows, from two processes at once, and nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.barrier import run_together

REPO = Path(__file__).resolve().parents[2]

SETUP = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
"""

FLUSHER = """
import json, sys
from datetime import UTC, datetime
import django
django.setup()
from ops.slo.recorder import request_metrics_flush, request_metrics_record
at = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)
start_line(sys.argv[1], sys.argv[2])
written = 0
for n in range(400):
    request_metrics_record(
        route=f"r{n % 2}", at=at, duration_ms=n % 700, status=500 if n % 8 == 0 else 200,
        tags=[("ranker", "treatment" if n % 4 else "control")],
    )
    if n % 20 == 19:
        written += request_metrics_flush()
print(json.dumps(written))
"""

CHECK = """
import json
from datetime import UTC, datetime, timedelta
import django
django.setup()
from django.db import connection
from ops.models import RouteMinute
from ops.slo.selectors import cohort_stats, request_stats
at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
total = request_stats(since=at, until=at + timedelta(minutes=1))
cohorts = cohort_stats(flag="ranker", since=at, until=at + timedelta(minutes=1))
print(json.dumps({
    "vendor": connection.vendor,
    "rows": RouteMinute.objects.count(),
    "count": total.count,
    "errors": total.errors,
    "buckets": sum(total.buckets),
    "treatment": cohorts["treatment"].count,
    "control": cohorts["control"].count,
}))
"""


@pytest.mark.slow
def test_two_processes_flushing_into_sqlite_add_up_to_every_request(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
    env.update(MATCHPLATFORM_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="matchplatform.settings")
    subprocess.run([sys.executable, "-c", SETUP], cwd=REPO, env=env, check=True, timeout=120)

    line = tmp_path / "start"
    line.mkdir()
    written = run_together(script=FLUSHER, count=2, env=env, folder=line, cwd=REPO)
    assert all(w > 0 for w in written)

    check = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    figures = json.loads(check.stdout.strip().splitlines()[-1])
    assert figures == {
        "vendor": "sqlite",
        # r0: total, treatment, control; r1 (odd n, never a multiple of 4): total, treatment.
        "rows": 5,
        "count": 800,
        "errors": 100,
        "buckets": 800,
        "treatment": 600,
        "control": 200,
    }
