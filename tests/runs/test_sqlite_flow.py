"""The zero-configuration path `make run` takes (SQLite, DEBUG on): a run goes from submit
to ready, and the staff figures and invariants compute on SQLite too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("seed_demo", "--investors", "300", "--startups", "3", "--no-progress")
from ops.invariants import invariants_run
from runs.selectors import match_runs_hourly
from runs.services import match_run_submit, match_runs_process_batch
submission = match_run_submit(url="https://WWW.demo-startup-002.example/?utm_source=x")
again = match_run_submit(url="https://demo-startup-002.example/")
match_runs_process_batch()
run = submission.run
run.refresh_from_db()
print(json.dumps({
    "created": [submission.created, again.created],
    "status": run.status,
    "match_count": run.match_count,
    "stored": run.matches.count(),
    "duration_ms": run.duration_ms,
    "hourly": match_runs_hourly(),
    "states": {o.name: o.state for o in invariants_run()},
    "details": {o.name: o.detail for o in invariants_run()},
}))
"""


def test_a_run_reaches_ready_on_sqlite_and_the_figures_compute(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
    env.update(
        MATCHPLATFORM_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="matchplatform.settings",
        DEBUG="true",
        OPS_WAKE_WORKERS="false",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["created"] == [True, False]
    assert out["status"] == "ready"
    assert out["match_count"] == out["stored"] == 50
    assert out["duration_ms"] is not None and out["duration_ms"] >= 0
    (hour,) = out["hourly"]
    assert (hour["total"], hour["successes"], hour["errors"]) == (1, 1, 0)
    assert hour["p95_duration_ms"] == out["duration_ms"]
    assert set(out["states"].values()) <= {"ok", "warn", "insufficient_data"}, out["states"]
    # One run is no sample for an error rate; the connection ceiling is PostgreSQL's.
    assert out["states"]["runs.error_rate_last_hour"] == "insufficient_data"
    assert out["details"]["runs.error_rate_last_hour"].startswith("n=1 < 20")
    assert (out["states"]["ops.database_connections"], out["details"]["ops.database_connections"]) == (
        "ok",
        "not applicable on SQLite",
    )
