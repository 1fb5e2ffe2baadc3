"""Where the machine's CPU went during a cell: the gunicorn processes, the PostgreSQL backends
serving the bench database, the client processes, and everything else on the machine (Linux
``/proc``; other processes on a shared machine show up as "others")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg

TICK = os.sysconf("SC_CLK_TCK")


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cpus together."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


def process_seconds(pid: int) -> float:
    """user + system CPU seconds of one process (all its threads); 0 if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Snapshot:
    busy: float
    total: float
    web: dict[int, float]
    db: dict[int, float]


class CpuMeter:
    """Snapshots of the gunicorn master and workers and of the bench database's backends."""

    def __init__(self, *, server_pid: int, dsn: str, datname: str) -> None:
        self.server_pid = server_pid
        self.dsn = dsn
        self.datname = datname
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.own_backend = int(self.conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]

    def close(self) -> None:
        self.conn.close()

    def snapshot(self) -> Snapshot:
        web_pids = [self.server_pid, *children_of(self.server_pid)]
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.datname]
        ).fetchall()
        busy, total = machine_seconds()
        return Snapshot(
            busy=busy,
            total=total,
            web={pid: process_seconds(pid) for pid in web_pids},
            db={int(r[0]): process_seconds(int(r[0])) for r in rows},
        )


@dataclass
class CpuUse:
    """CPU seconds spent between two snapshots."""

    busy: float = 0.0
    total: float = 0.0
    web: float = 0.0
    db: float = 0.0
    clients: float = 0.0

    @property
    def others(self) -> float:
        return max(self.busy - self.web - self.db - self.clients, 0.0)

    def __add__(self, other: CpuUse) -> CpuUse:
        return CpuUse(
            self.busy + other.busy,
            self.total + other.total,
            self.web + other.web,
            self.db + other.db,
            self.clients + other.clients,
        )


def cpu_between(before: Snapshot, after: Snapshot, *, clients: float) -> CpuUse:
    def spent(a: dict[int, float], b: dict[int, float]) -> float:
        return sum(max(b[pid] - a.get(pid, 0.0), 0.0) for pid in b)

    return CpuUse(
        busy=after.busy - before.busy,
        total=after.total - before.total,
        web=spent(before.web, after.web),
        db=spent(before.db, after.db),
        clients=clients,
    )
