"""The lease queue stays correct on SQLite (the zero-configuration `make run` database):
claims from several processes at once serialize and never hand out a row twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.barrier import run_together

REPO = Path(__file__).resolve().parents[2]

SETUP = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from runs.models import MatchRun
MatchRun.objects.bulk_create(
    [MatchRun(canonical_url=f"https://s{i}.example", submitted_url="x", max_attempts=3) for i in range(400)]
)
"""

CLAIMER = """
import json, sys, time
import django
django.setup()
from runs.queue import runs_queue
start_line(sys.argv[1], sys.argv[2])
mine = []
while batch := runs_queue.claim(owner=sys.argv[2], limit=5, ttl=30):
    mine += [lease.id for lease in batch]
    time.sleep(0.002)  # the work between claim and ack
    runs_queue.ack_many(leases=batch)
print(json.dumps(mine))
"""


def test_three_processes_claiming_from_sqlite_share_the_rows_without_overlap(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
    env.update(MATCHPLATFORM_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="matchplatform.settings")
    subprocess.run([sys.executable, "-c", SETUP], cwd=REPO, env=env, check=True, timeout=120)

    line = tmp_path / "start"
    line.mkdir()
    claimed = run_together(script=CLAIMER, count=3, env=env, folder=line, cwd=REPO)
    every = [item for mine in claimed for item in mine]

    assert len(every) == 400
    assert len(set(every)) == 400
    assert sum(1 for mine in claimed if mine) >= 2

    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from runs.models import MatchRun; from ops.models import QueueHistory;"
            "print(MatchRun.objects.filter(status='ready').count(), QueueHistory.objects.filter(event='ack').count())",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert check.stdout.split() == ["400", "400"]
