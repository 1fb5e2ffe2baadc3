"""The feed on SQLite, the database ``make run`` uses when none is configured: the page
statement is the same SQL there, read back through SQLite's types (text timestamps and UUIDs,
0/1 booleans). Run in a child process with its own database file (the suite's database is
PostgreSQL): migrate, seed the demo members, sign in as ``demo`` and walk every sort."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("seed_members", password="a long enough password", verbosity=0)
from django.test import Client
from proposals.models import FeedItem
from django.contrib.auth.models import User
client = Client()
assert client.login(username="demo", password="a long enough password")
demo = User.objects.get(username="demo")
out = {"total": FeedItem.objects.filter(member=demo).count(), "sorts": {}}
for sort in ("newest", "compatibility", "expiring_soon"):
    items, cursor, pages = [], None, 0
    while True:
        params = {"sort": sort, "page_size": 7, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/matches/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        items += body["results"]
        cursor, pages = body["next_cursor"], pages + 1
        if not cursor:
            break
    out["sorts"][sort] = {"pages": pages, "items": items}
accepted = client.get("/api/matches/", {"status": "accepted"}).json()["results"][0]
out["detail"] = client.get(f"/api/matches/{accepted['match_id']}/").json()
print(json.dumps(out))
"""


def test_the_feed_pages_every_sort_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CACHE_URL")}
    env.update(
        MATCHPLATFORM_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="matchplatform.settings",
        CELERY_BROKER_URL="memory://",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (tmp_path / "matchplatform.sqlite3").exists()
    assert out["total"] > 7  # more than one page
    for sort, walk in out["sorts"].items():
        items = walk["items"]
        ids = [i["match_id"] for i in items]
        assert len(ids) == len(set(ids)) == out["total"], sort
        assert all(i["created_at"].endswith("Z") and i["expires_at"].endswith("Z") for i in items)
        assert all(i["status"] in ("pending", "accepted", "rejected", "expired") for i in items)
        assert all((i["seconds_left"] is not None) == (i["status"] == "pending") for i in items)
        if sort == "newest":
            assert [i["created_at"] for i in items] == sorted((i["created_at"] for i in items), reverse=True)
        if sort == "compatibility":
            assert [i["compatibility"] for i in items] == sorted((i["compatibility"] for i in items), reverse=True)
        if sort == "expiring_soon":
            pending = [i for i in items if i["status"] == "pending"]
            assert items[: len(pending)] == pending
            assert [i["expires_at"] for i in pending] == sorted(i["expires_at"] for i in pending)
    detail = out["detail"]
    assert detail["status"] == "accepted" and detail["conversation_id"] and detail["with"]["display_name"]
