"""The lease queue every pipeline shares (DESIGN.md, "The lease queue").

A queue is a table of ``LeaseQueueModel`` rows. Workers ``claim`` batches of rows in one
statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the IMMEDIATE transaction
mode serializes claims), and finish each with ``ack`` / ``fail`` / ``extend``, which are
conditional on the fencing token handed out by the claim. All times are the database's.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import IntegrityError, connection, models, transaction
from django.db.models.functions import Now

from matchplatform.exceptions import ErrorCode, LeaseLost
from ops.db import MillisecondsSince
from ops.models import DeadLetter, LeaseQueueModel, QueueHistory, QueueStatus
from ops.worker import worker_counters

PROCESSING = QueueStatus.PROCESSING.value
QUEUED = QueueStatus.QUEUED.value
# A placeholder of a compiled filter, or a literal percent sign (kept as it is).
_PLACEHOLDER = re.compile(r"%%|%s")

# Every event a row can go through, and the transitions it may make. One place for the
# whole state machine; history rows name the event.
EVENTS: dict[str, tuple[set[str], str]] = {
    # event: (allowed from-states, to-state placeholder)
    "claim": ({QUEUED}, PROCESSING),
    "ack": ({PROCESSING}, "done"),
    "retry": ({PROCESSING}, QUEUED),
    "dead": ({PROCESSING}, "dead"),
    "rescue": ({PROCESSING}, QUEUED),
    # Put back unworked (safe mode paused the work): the attempt does not count.
    "defer": ({PROCESSING}, QUEUED),
    "requeue": ({"dead"}, QUEUED),
}


@dataclass(frozen=True)
class Lease:
    """What a claim hands a worker: the row, its fencing token, and which attempt this is."""

    id: int
    token: uuid.UUID
    attempt: int


@dataclass(frozen=True)
class ReleaseResult:
    requeued: list[int]
    dead: list[int]


def backoff_seconds(*, errors: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(errors-1)))."""
    ceiling = min(cap, base * (2 ** max(errors - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


class LeaseQueue:
    def __init__(
        self,
        *,
        model: type[LeaseQueueModel],
        done_status: str = QueueStatus.DONE.value,
        dead_status: str = QueueStatus.DEAD.value,
        max_rescues: int | Callable[[], int] = 3,
        wake: Callable[[], None] | None = None,
        finished_field: str | None = None,
        duration_field: str | None = None,
    ) -> None:
        self.model = model
        self.label = model._meta.label_lower
        self.table = model._meta.db_table
        self.done_status = done_status
        self.dead_status = dead_status
        self._max_rescues = max_rescues
        self.wake = wake
        # A timestamp column stamped with the DB clock when a row reaches done or dead.
        self.finished_field = finished_field
        # A bigint column given the milliseconds from created_at to done or dead (DB clock).
        self.duration_field = duration_field

    def _finished(self) -> dict[str, Any]:
        stamps: dict[str, Any] = {}
        if self.finished_field:
            stamps[self.finished_field] = Now()
        if self.duration_field:
            stamps[self.duration_field] = MillisecondsSince("created_at")
        return stamps

    # -- helpers ---------------------------------------------------------------------
    @property
    def max_rescues(self) -> int:
        value = self._max_rescues
        return value() if callable(value) else value

    def status_for(self, event: str) -> str:
        target = EVENTS[event][1]
        return {"done": self.done_status, "dead": self.dead_status}.get(target, target)

    def transition_allowed(self, *, from_status: str, event: str) -> bool:
        allowed_from = {self.dead_status if s == "dead" else s for s in EVENTS[event][0]}
        return from_status in allowed_from

    @staticmethod
    def _lease_event(lease: Lease, *, event: str, from_status: str, to_status: str, **extra: Any) -> dict[str, Any]:
        """A history row for a transition made under ``lease``."""
        return {
            "item_id": lease.id,
            "from_status": from_status,
            "to_status": to_status,
            "event": event,
            "lease_token": lease.token,
            "attempt": lease.attempt,
            **extra,
        }

    def _history(self, rows: Iterable[dict[str, Any]]) -> None:
        QueueHistory.objects.bulk_create([QueueHistory(queue=self.label, **row) for row in rows])

    def _lost(self, *, lease: Lease, event: str) -> LeaseLost:
        """Count a result that arrived after its lease was lost, and say so in history."""
        worker_counters().add(leases_lost=1)
        current = self.model._default_manager.filter(pk=lease.id).values_list("status", flat=True).first() or ""
        self._history(
            [
                self._lease_event(
                    lease,
                    event="lease_lost",
                    from_status=current,
                    to_status=current,
                    error=f"{event} refused: fencing token no longer holds the lease",
                )
            ]
        )
        return LeaseLost(f"{self.label}#{lease.id}: {event} refused, the lease was lost", code=ErrorCode.LEASE_LOST)

    # -- claim -----------------------------------------------------------------------
    def claim(
        self, *, owner: str, limit: int, ttl: float, where: models.Q | Mapping[str, Any] | None = None
    ) -> list[Lease]:
        """Lease up to ``limit`` claimable rows for ``ttl`` seconds. ``where`` (a ``Q`` or a
        dict of lookups on the queue's model) narrows which rows may be picked, e.g. one
        topic of a queue that carries several; the order and the locking are the same."""
        if limit <= 0:
            return []
        if connection.vendor == "postgresql":
            return self._claim_postgresql(owner=owner, limit=limit, ttl=ttl, where=where)
        return self._claim_generic(owner=owner, limit=limit, ttl=ttl, where=where)

    @staticmethod
    def _where_q(where: models.Q | Mapping[str, Any] | None) -> models.Q | None:
        if where is None or isinstance(where, models.Q):
            return where
        return models.Q(**where)

    def _where_sql(self, where: models.Q) -> tuple[str, dict[str, Any]]:
        """``where`` as SQL for the claim's pick, with named parameters (the claim's own are
        named). A filter on the row's own columns is inlined, so the queue's indexes serve it;
        one that needs a join becomes ``id IN (subquery)``."""
        query = self.model._default_manager.filter(where).values("id").query
        compiler = query.get_compiler(connection=connection)
        try:
            sql, params = compiler.compile(query.where)
        except FullResultSet:  # Q(): every row
            return "", {}
        except EmptyResultSet:  # e.g. Q(pk__in=[]): no row
            return "FALSE", {}
        if len(query.alias_map) > 1:  # a join: select the ids instead
            sql, params = query.sql_with_params()
            sql = f"id IN ({sql})"
        values = iter(params)
        names: dict[str, Any] = {}

        def name(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%%"
            key = f"where_{len(names)}"
            names[key] = next(values)
            return f"%({key})s"

        return _PLACEHOLDER.sub(name, sql), names

    def _claim_postgresql(
        self, *, owner: str, limit: int, ttl: float, where: models.Q | Mapping[str, Any] | None = None
    ) -> list[Lease]:
        history = QueueHistory._meta.db_table
        where_q = self._where_q(where)
        where_sql, where_params = self._where_sql(where_q) if where_q is not None else ("", {})
        narrow = f" AND ({where_sql})" if where_sql else ""
        # One round trip: pick, lease and record history in a single statement.
        sql = f"""
            WITH picked AS (
                SELECT id FROM {self.table}
                WHERE status = %(queued)s AND available_at <= statement_timestamp(){narrow}
                ORDER BY priority, id
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE {self.table} AS q
                SET status = %(processing)s,
                    attempts = q.attempts + 1,
                    lease_token = gen_random_uuid(),
                    lease_owner = %(owner)s,
                    lease_expires_at = statement_timestamp() + make_interval(secs => %(ttl)s),
                    updated_at = statement_timestamp()
                FROM picked WHERE q.id = picked.id
                RETURNING q.id, q.lease_token, q.attempts, q.priority
            ), hist AS (
                INSERT INTO {history}
                    (queue, item_id, from_status, to_status, event, lease_owner, lease_token,
                     attempt, error, created_at)
                SELECT %(label)s, id, %(queued)s, %(processing)s, 'claim', %(owner)s, lease_token,
                       attempts, '', statement_timestamp()
                FROM claimed
            )
            SELECT id, lease_token, attempts FROM claimed ORDER BY priority, id
        """  # noqa: S608 - table names come from model meta, values are parameters
        params: dict[str, Any] = {
            "queued": QUEUED,
            "processing": PROCESSING,
            "limit": limit,
            "owner": owner,
            "ttl": float(ttl),
            "label": self.label,
            **where_params,
        }
        # One statement under autocommit is atomic: no BEGIN/COMMIT round trips needed.
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [Lease(id=row[0], token=row[1], attempt=row[2]) for row in rows]

    def _claim_generic(
        self, *, owner: str, limit: int, ttl: float, where: models.Q | Mapping[str, Any] | None = None
    ) -> list[Lease]:
        # SQLite has no SKIP LOCKED; the IMMEDIATE transaction takes the write lock before
        # the SELECT, so two claimers can never pick the same row.
        leases: list[Lease] = []
        where_q = self._where_q(where)
        with transaction.atomic():
            claimable = self.model._default_manager.filter(status=QUEUED, available_at__lte=Now())
            if where_q is not None:
                claimable = claimable.filter(where_q)
            picked = list(claimable.order_by("priority", "id").values_list("id", "attempts")[:limit])
            expires = Now() + timedelta(seconds=ttl)
            for item_id, attempts in picked:
                token = uuid.uuid4()
                self.model._default_manager.filter(pk=item_id, status=QUEUED).update(
                    status=PROCESSING,
                    attempts=attempts + 1,
                    lease_token=token,
                    lease_owner=owner,
                    lease_expires_at=expires,
                    updated_at=Now(),
                )
                leases.append(Lease(id=item_id, token=token, attempt=attempts + 1))
            self._history(
                self._lease_event(lease, event="claim", from_status=QUEUED, to_status=PROCESSING, lease_owner=owner)
                for lease in leases
            )
        return leases

    # -- finish ----------------------------------------------------------------------
    def _held(self, lease: Lease) -> models.QuerySet[Any]:
        return self.model._default_manager.filter(pk=lease.id, lease_token=lease.token, status=PROCESSING)

    def ack(
        self,
        *,
        lease: Lease,
        fields: dict[str, Any] | None = None,
        on_ack: Callable[[], None] | None = None,
    ) -> None:
        """Mark one row done; ``on_ack`` writes its result in the same transaction. Raises
        ``LeaseLost`` (and writes nothing) when the lease no longer holds."""
        acked = self.ack_many(
            leases=[lease],
            fields={lease.id: fields} if fields else None,
            on_ack=(lambda held: on_ack()) if on_ack is not None else None,
        )
        if not acked:
            raise LeaseLost(f"{self.label}#{lease.id}: ack refused, the lease was lost", code=ErrorCode.LEASE_LOST)

    def ack_many(
        self,
        *,
        leases: Sequence[Lease],
        fields: Mapping[int, dict[str, Any]] | None = None,
        on_ack: Callable[[list[Lease]], None] | None = None,
    ) -> list[int]:
        """Mark a batch done in one transaction, so one durable commit serves the batch.

        The conditional updates run first and lock the rows, then ``on_ack`` writes the
        results of the leases that still held; ``fields`` sets per-row columns. Leases lost
        in the meantime are recorded in history and counted, and their results never
        written. Returns the ids acked."""
        if not leases:
            return []
        done = self.status_for("ack")
        columns = sorted({name for row in (fields or {}).values() for name in row})
        one_statement = connection.vendor == "postgresql" and all(
            set((fields or {}).get(lease.id) or ()) == set(columns) for lease in leases
        )
        # A lone statement is atomic by itself; skip BEGIN/COMMIT round trips when it can.
        with transaction.atomic() if (on_ack is not None or not one_statement) else nullcontext():
            if one_statement:
                acked_ids = set(
                    self._ack_many_postgresql(leases=leases, done=done, columns=columns, fields=fields or {})
                )
                held = [lease for lease in leases if lease.id in acked_ids]
            else:
                held = [
                    lease
                    for lease in leases
                    if self._held(lease).update(
                        status=done,
                        lease_expires_at=None,
                        updated_at=Now(),
                        **self._finished(),
                        **((fields or {}).get(lease.id) or {}),
                    )
                ]
                self._history(
                    self._lease_event(lease, event="ack", from_status=PROCESSING, to_status=done) for lease in held
                )
            if on_ack is not None and held:
                on_ack(held)
                if self.finished_field or self.duration_field:
                    # Stamp the finish after the results are written, so a row's duration
                    # covers its whole ack, not just the first statement of it.
                    self.model._default_manager.filter(pk__in=[lease.id for lease in held]).update(**self._finished())
        held_ids = {lease.id for lease in held}
        for lease in leases:
            if lease.id not in held_ids:
                self._lost(lease=lease, event="ack")
        worker_counters().add(processed=len(held))
        return [lease.id for lease in held]

    def _ack_many_postgresql(
        self, *, leases: Sequence[Lease], done: str, columns: list[str], fields: Mapping[int, dict[str, Any]]
    ) -> list[int]:
        """One statement: per-row values travel in a VALUES list, history is written by a CTE."""
        history = QueueHistory._meta.db_table
        model_fields: list[models.Field[Any, Any]] = []
        for name in columns:
            field = self.model._meta.get_field(name)
            assert isinstance(field, models.Field), f"{name} is not a column of {self.label}"
            model_fields.append(field)
        casts = "".join(f", %s::{field.db_type(connection)}" for field in model_fields)
        values = ", ".join([f"(%s::bigint, %s::uuid{casts})"] * len(leases))
        names = "".join(f", c{i}" for i in range(len(columns)))
        sets = "".join(f", {field.column} = v.c{i}" for i, field in enumerate(model_fields))
        if self.finished_field:
            sets += f", {self.finished_field} = statement_timestamp()"
        if self.duration_field:
            since = "EXTRACT(EPOCH FROM (statement_timestamp() - q.created_at)) * 1000"
            sets += f", {self.duration_field} = ({since})::bigint"
        sql = f"""
            WITH acked AS (
                UPDATE {self.table} AS q
                SET status = %s, lease_expires_at = NULL, updated_at = statement_timestamp(){sets}
                FROM (VALUES {values}) AS v(id, token{names})
                WHERE q.id = v.id AND q.lease_token = v.token AND q.status = %s
                RETURNING q.id, q.lease_token, q.attempts
            ), hist AS (
                INSERT INTO {history}
                    (queue, item_id, from_status, to_status, event, lease_owner, lease_token,
                     attempt, error, created_at)
                SELECT %s, id, %s, %s, 'ack', '', lease_token, attempts, '', statement_timestamp()
                FROM acked
            )
            SELECT id FROM acked
        """  # noqa: S608
        params: list[Any] = [done]
        for lease in leases:
            row = fields.get(lease.id) or {}
            params += [lease.id, lease.token]
            params += [
                field.get_db_prep_value(row[name], connection)
                for name, field in zip(columns, model_fields, strict=True)
            ]
        params += [PROCESSING, self.label, PROCESSING, done]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]

    def extend(self, *, lease: Lease, ttl: float) -> None:
        updated = self._held(lease).update(lease_expires_at=Now() + timedelta(seconds=ttl), updated_at=Now())
        if not updated:
            raise self._lost(lease=lease, event="extend")

    def defer(self, *, lease: Lease, seconds: float, reason: str) -> None:
        """Put the row back, unworked, to be claimed again in ``seconds`` (the work is paused,
        not failed: the attempt is given back and no error is counted)."""
        with transaction.atomic():
            updated = self._held(lease).update(
                status=QUEUED,
                available_at=Now() + timedelta(seconds=seconds),
                lease_expires_at=None,
                attempts=models.F("attempts") - 1,
                updated_at=Now(),
            )
            if updated:
                self._history(
                    [self._lease_event(lease, event="defer", from_status=PROCESSING, to_status=QUEUED, error=reason)]
                )
        if not updated:
            raise self._lost(lease=lease, event="defer")

    def fail(self, *, lease: Lease, error: str, retryable: bool = True, fields: Mapping[str, Any] | None = None) -> str:
        """Record a failed attempt: back to queued after a jittered backoff, or dead when the
        row has used its attempts (or the error is not worth retrying). ``fields`` sets the
        domain's own columns in the same update (runs: the error's code and public message).
        Returns the new status."""
        error = error[:4000]
        extra = dict(fields or {})
        with transaction.atomic():
            row = self._held(lease).select_for_update().values("attempts", "rescues", "max_attempts").first()
            if row is None:
                lost = True
            else:
                lost = False
                errors = row["attempts"] - row["rescues"]
                if retryable and errors < row["max_attempts"]:
                    delay = backoff_seconds(
                        errors=errors,
                        base=settings.OPS_BACKOFF_BASE_SECONDS,
                        cap=settings.OPS_BACKOFF_MAX_SECONDS,
                    )
                    new_status, event = QUEUED, "retry"
                    self._held(lease).update(
                        status=QUEUED,
                        available_at=Now() + timedelta(seconds=delay),
                        lease_expires_at=None,
                        last_error=error,
                        updated_at=Now(),
                        **extra,
                    )
                else:
                    new_status, event = self.dead_status, "dead"
                    self._held(lease).update(
                        status=self.dead_status,
                        lease_expires_at=None,
                        last_error=error,
                        updated_at=Now(),
                        **self._finished(),
                        **extra,
                    )
                self._history(
                    [self._lease_event(lease, event=event, from_status=PROCESSING, to_status=new_status, error=error)]
                )
                if event == "dead":
                    self._dead_letter(
                        item_id=lease.id,
                        reason="attempts" if retryable else "permanent",
                        attempts=row["attempts"],
                        rescues=row["rescues"],
                        last_error=error,
                    )
        if lost:
            raise self._lost(lease=lease, event="fail")
        worker_counters().add(failed=1)
        return new_status

    def _dead_letter(self, *, item_id: int, reason: str, attempts: int, rescues: int, last_error: str) -> None:
        errors = list(
            QueueHistory.objects.filter(queue=self.label, item_id=item_id)
            .exclude(error="")
            .order_by("id")
            .values_list("error", flat=True)
        )
        DeadLetter.objects.create(
            queue=self.label,
            item_id=item_id,
            reason=reason,
            attempts=attempts,
            rescues=rescues,
            last_error=last_error,
            errors=errors,
        )

    # -- sweeps ----------------------------------------------------------------------
    def release_expired(self, *, limit: int = 1000) -> ReleaseResult:
        """Put rows whose lease expired back to queued, or dead once rescued too often.

        Idempotent and safe to run from several processes at once: a row is only touched
        while it is still ``processing`` with an expired lease, under a row lock."""
        max_rescues = self.max_rescues
        with transaction.atomic():
            if connection.vendor == "postgresql":
                sql = f"""
                    WITH expired AS (
                        SELECT id, lease_owner, lease_token FROM {self.table}
                        WHERE status = %(processing)s AND lease_expires_at < statement_timestamp()
                        ORDER BY id
                        LIMIT %(limit)s
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE {self.table} AS q
                    SET status = CASE WHEN q.rescues + 1 > %(max_rescues)s THEN %(dead)s ELSE %(queued)s END,
                        rescues = q.rescues + 1,
                        lease_expires_at = NULL,
                        available_at = statement_timestamp(),
                        updated_at = statement_timestamp()
                    FROM expired WHERE q.id = expired.id
                    RETURNING q.id, q.status, expired.lease_owner, expired.lease_token, q.attempts,
                              q.rescues, q.last_error
                """  # noqa: S608
                with connection.cursor() as cursor:
                    cursor.execute(
                        sql,
                        {
                            "processing": PROCESSING,
                            "limit": limit,
                            "max_rescues": max_rescues,
                            "dead": self.dead_status,
                            "queued": QUEUED,
                        },
                    )
                    rows = cursor.fetchall()
            else:
                expired = list(
                    self.model._default_manager.filter(status=PROCESSING, lease_expires_at__lt=Now())
                    .order_by("id")
                    .values_list("id", "lease_owner", "lease_token", "attempts", "rescues", "last_error")[:limit]
                )
                rows = []
                for item_id, owner, token, attempts, rescues, last_error in expired:
                    status = self.dead_status if rescues + 1 > max_rescues else QUEUED
                    self.model._default_manager.filter(pk=item_id, status=PROCESSING, lease_token=token).update(
                        status=status,
                        rescues=rescues + 1,
                        lease_expires_at=None,
                        available_at=Now(),
                        updated_at=Now(),
                    )
                    rows.append((item_id, status, owner, token, attempts, rescues + 1, last_error))
            self._history(
                {
                    "item_id": item_id,
                    "from_status": PROCESSING,
                    "to_status": status,
                    "event": "rescue",
                    "lease_owner": owner,
                    "lease_token": token,
                    "attempt": attempts,
                    "error": f"lease of {owner} expired; rescue {rescues}",
                }
                for item_id, status, owner, token, attempts, rescues, _ in rows
            )
            for item_id, status, _owner, _token, attempts, rescues, _last_error in rows:
                if status == self.dead_status:
                    # A poison pill: whatever error came before, this is why it stopped.
                    error = f"gave up: the worker's lease expired {rescues} times (it crashed or stalled each time)"
                    self.model._default_manager.filter(pk=item_id).update(last_error=error, **self._finished())
                    self._dead_letter(
                        item_id=item_id, reason="rescues", attempts=attempts, rescues=rescues, last_error=error
                    )
        requeued = [row[0] for row in rows if row[1] == QUEUED]
        dead = [row[0] for row in rows if row[1] != QUEUED]
        return ReleaseResult(requeued=requeued, dead=dead)

    def requeue_dead(self, *, item_ids: Sequence[int]) -> list[int]:
        """Give dead rows a fresh start (an operator's action from the dead-letter page).

        Each row in its own savepoint: a row the domain will not take back (runs: its URL
        has a newer active run, and the one-active-run constraint refuses a second) is
        skipped without undoing the others. Returns the ids requeued."""
        requeued: list[int] = []
        # Durable: the wake-up goes out on commit, so this must be the outermost transaction.
        # Rows are locked in id order (ops/LOCKING.md), so two overlapping requeues queue up.
        with transaction.atomic(durable=True):
            ids = list(
                self.model._default_manager.select_for_update(no_key=True)
                .filter(pk__in=list(item_ids), status=self.dead_status)
                .order_by("id")
                .values_list("id", flat=True)
            )
            for item_id in ids:
                try:
                    with transaction.atomic():
                        self.model._default_manager.filter(pk=item_id).update(
                            status=QUEUED,
                            attempts=0,
                            rescues=0,
                            available_at=Now(),
                            lease_expires_at=None,
                            updated_at=Now(),
                        )
                except IntegrityError:
                    continue
                requeued.append(item_id)
            DeadLetter.objects.filter(queue=self.label, item_id__in=requeued, requeued_at__isnull=True).update(
                requeued_at=Now()
            )
            self._history(
                {"item_id": item_id, "from_status": self.dead_status, "to_status": QUEUED, "event": "requeue"}
                for item_id in requeued
            )
            if requeued and self.wake is not None:
                transaction.on_commit(self.wake)
        return requeued

    def depths(self) -> dict[str, int]:
        """Rows waiting, leased and dead. Done rows are left out: counting them would scan
        the whole table, and they are archived anyway."""
        statuses = (QUEUED, PROCESSING, self.dead_status)
        counts = dict(
            self.model._default_manager.filter(status__in=statuses)
            .values_list("status")
            .annotate(n=models.Count("id"))
            .values_list("status", "n")
        )
        return {status: int(counts.get(status, 0)) for status in statuses}


_REGISTRY: dict[str, LeaseQueue] = {}


def queue_register(queue: LeaseQueue) -> LeaseQueue:
    _REGISTRY[queue.label] = queue
    return queue


def queue_get(label: str) -> LeaseQueue:
    return _REGISTRY[label]


def queues_all() -> list[LeaseQueue]:
    return list(_REGISTRY.values())
