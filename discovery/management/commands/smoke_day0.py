"""manage.py smoke_day0: the Day-0 runbook's 15-minute smoke test as one command.

Each step prints PASS, FAIL (or SKIP, which is not a failure) with a short detail; any FAIL
exits 1. The steps: the discovery tables (and the flags') exist; on PostgreSQL every
member-owned table has row security on and its policies; the Day-0 catalog is seeded; the
flags the ranker reads exist; then a member's journey with a throwaway member: set three
interests, their discovery jobs queued, the discovery worker run until they are done,
suggestions returned, the decision logged as a learning event, a click recorded as a signal
and joined to the decision as its reward, and policy health reporting the decision's version.

The throwaway member and everything made for it (interests, discovery jobs and its sign-up
event with their queue history and dead letters, decisions, signals) are deleted at the end, also when a step failed or
the command was interrupted. Gaps the worker records stay: they describe the catalog, not the
member. The worker step runs the real worker, so it also processes other members' queued jobs
(as the runbook's "run worker once" does).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import QuerySet

from discovery.catalog import DAY0
from discovery.models import (
    Candidate,
    Category,
    DiscoveryEvent,
    DiscoveryJob,
    IntentSignal,
    Interest,
    InterestCategory,
    LearningEvent,
    UserInterest,
)
from discovery.names import CRUSH_MODE, LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.queue import discovery_queue, events_queue
from discovery.row_security import PROTECTED_TABLES, policies_present
from ops.models import DeadLetter, QueueHistory, QueueStatus

# The runbook's journey: three interests with these affinities.
JOURNEY = (("ai", 0.9), ("climate", 0.8), ("fintech", 0.7))
USERNAME_PREFIX = "smoke-day0-"
# How long the worker step waits for its jobs when another worker holds them.
WORKER_WAIT_SECONDS = 30.0


class StepFailed(Exception):
    pass


class Command(BaseCommand):
    help = "The Day-0 runbook's smoke test: PASS / FAIL per step, exit 1 on any failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--worker-wait",
            type=float,
            default=WORKER_WAIT_SECONDS,
            help="Seconds to wait for the journey's discovery jobs (another worker may hold them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.failures = 0
        self.worker_wait = float(options["worker_wait"])
        self.step("tables", self.check_tables)
        self.step("row security", self.check_policies)
        self.step("seed data", self.check_catalog)
        self.step("flags", self.check_flags)
        member = User.objects.create_user(username=USERNAME_PREFIX + secrets.token_hex(6))
        self.member = member
        self.decision_id: str | None = None
        self.job_ids: list[int] = []
        try:
            ok = self.step("interests", self.journey_interests)
            ok = ok and self.step("enqueue", self.journey_enqueue)
            ok = ok and self.step("worker", self.journey_worker)
            ok = self.step("suggestions", self.journey_suggestions) and ok
            ok = ok and self.step("learning event", self.journey_learning_event)
            ok = ok and self.step("signal and reward", self.journey_signal)
            self.step("policy health", self.journey_policy_health, skip=not ok and "the journey failed before it")
        finally:
            self.cleanup()
        if self.failures:
            raise CommandError(f"smoke_day0: {self.failures} step(s) failed", returncode=1)
        self.stdout.write(self.style.SUCCESS("smoke_day0: all steps passed"))

    # --- reporting ---------------------------------------------------------------------------

    def step(self, name: str, check: Callable[[], str], *, skip: str | bool = False) -> bool:
        """Run one step; print its verdict. A step passes by returning its detail, fails by
        raising (StepFailed with the reason, or any error, named)."""
        if skip:
            self.failures += 1
            self.stdout.write(self.style.ERROR(f"FAIL  {name}: not run ({skip})"))
            return False
        try:
            detail = check()
        except StepFailed as exc:
            self.failures += 1
            self.stdout.write(self.style.ERROR(f"FAIL  {name}: {exc}"))
            return False
        except Exception as exc:
            self.failures += 1
            self.stdout.write(self.style.ERROR(f"FAIL  {name}: {type(exc).__name__}: {exc}"))
            return False
        if detail.startswith("SKIP "):
            self.stdout.write(self.style.WARNING(f"SKIP  {name}: {detail[5:]}"))
        else:
            self.stdout.write(self.style.SUCCESS(f"PASS  {name}: {detail}"))
        return True

    # --- schema, policies, seed data, flags ------------------------------------------------------

    def check_tables(self) -> str:
        wanted = [m._meta.db_table for m in apps.get_app_config("discovery").get_models()]
        wanted += [apps.get_model("flags", "Flag")._meta.db_table, QueueHistory._meta.db_table]
        wanted += [DeadLetter._meta.db_table]
        present = set(connection.introspection.table_names())
        missing = [t for t in wanted if t not in present]
        if missing:
            raise StepFailed(f"missing {', '.join(missing)} (run manage.py migrate)")
        return f"{len(wanted)} tables"

    def check_policies(self) -> str:
        if connection.vendor != "postgresql":
            return "SKIP row-level security is PostgreSQL-only (this database is " + connection.vendor + ")"
        found = policies_present()
        bad = [t for t, names in found.items() if not names or names == ["(row security off)"]]
        if bad:
            raise StepFailed(f"no row security on {', '.join(bad)} (migration discovery 0005 missing?)")
        return f"{sum(len(n) for n in found.values())} policies on {len(PROTECTED_TABLES)} tables"

    def check_catalog(self) -> str:
        counts = {
            "interests": Interest.objects.count(),
            "categories": Category.objects.count(),
            "mappings": InterestCategory.objects.count(),
            "candidates": Candidate.objects.count(),
        }
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        missing = [row.interest for row in DAY0 if not Interest.objects.filter(slug=row.interest).exists()]
        missing += [row.candidate for row in DAY0 if not Candidate.objects.filter(name=row.candidate).exists()]
        short = [name for name, n in counts.items() if n < len(DAY0)]
        if missing or short:
            raise StepFailed(f"{summary}; the Day-0 catalog is not loaded (run manage.py seed_discovery)")
        return summary

    def check_flags(self) -> str:
        from discovery.configs import RANKER_POLICY
        from flags.config.selectors import config_get
        from flags.evaluation import safe_mode_active

        Flag = apps.get_model("flags", "Flag")
        names = (LEARNING_ENABLED, MARKETPLACE_SUGGEST, CRUSH_MODE)
        missing = [n for n in names if not Flag.objects.filter(name=n).exists()]
        if missing:
            raise StepFailed(f"missing flags {', '.join(missing)}")
        policy = config_get(RANKER_POLICY)
        safe = "on" if safe_mode_active() else "off"
        return f"{len(names)} flags; ranker.policy {policy.version} epsilon {policy.epsilon:g}; safe mode {safe}"

    # --- the member's journey ----------------------------------------------------------------

    def journey_interests(self) -> str:
        from discovery.services import user_interests_set

        rows = user_interests_set(user=self.member, affinities=dict(JOURNEY))
        if len(rows) != len(JOURNEY):
            raise StepFailed(f"{len(rows)} interests stored, {len(JOURNEY)} set")
        return f"{self.member.username}: " + ", ".join(f"{r.interest.slug} {r.affinity:g}" for r in rows)

    def journey_enqueue(self) -> str:
        self.job_ids = list(DiscoveryJob.objects.filter(user=self.member).values_list("id", flat=True))
        if len(self.job_ids) != len(JOURNEY):
            raise StepFailed(f"{len(self.job_ids)} discovery jobs queued for {len(JOURNEY)} interests")
        return f"{len(self.job_ids)} discovery jobs queued"

    def journey_worker(self) -> str:
        from discovery.services import discovery_jobs_process_batch

        claimed = 0
        deadline = time.monotonic() + self.worker_wait
        while True:
            claimed += discovery_jobs_process_batch()
            statuses = list(DiscoveryJob.objects.filter(pk__in=self.job_ids).values_list("status", flat=True))
            if all(s not in (QueueStatus.QUEUED, QueueStatus.PROCESSING) for s in statuses):
                break
            if time.monotonic() > deadline:
                raise StepFailed(f"the journey's jobs are still {sorted(set(statuses))} after {self.worker_wait:g} s")
            time.sleep(0.2)
        done = statuses.count(QueueStatus.DONE)
        if done != len(self.job_ids):
            raise StepFailed(f"{done} of {len(self.job_ids)} jobs done ({sorted(set(statuses))})")
        found = sorted(
            n or 0 for n in DiscoveryJob.objects.filter(pk__in=self.job_ids).values_list("candidates_found", flat=True)
        )
        return f"{claimed} jobs processed here; the journey's {done} done (candidates found {found})"

    def journey_suggestions(self) -> str:
        from discovery.services import suggestions_for_user

        result = suggestions_for_user(user=self.member, limit=12)
        if not result.candidates:
            raise StepFailed("no suggestions (is marketplace.suggest on, and are candidates active?)")
        self.decision_id = result.decision_id
        self.chosen_id = result.candidates[0].pk
        kind = "personal" if result.personal else "fallback"
        return f"{len(result.candidates)} suggestions ({kind}), led by {result.candidates[0].name!r}"

    def decision(self) -> str:
        if self.decision_id is None:
            raise StepFailed("no decision logged (learning.enabled is off for this member?)")
        return self.decision_id

    def journey_learning_event(self) -> str:
        event = LearningEvent.objects.get(decision_id=self.decision(), user=self.member)
        return (
            f"decision {event.decision_id} {event.policy_version} p_exp {event.p_exp:.4f} "
            f"explored {event.explored} randomized {event.randomized}"
        )

    def journey_signal(self) -> str:
        from discovery.services import signal_record

        signal = signal_record(
            user=self.member, candidate_id=self.chosen_id, kind=IntentSignal.Kind.CLICK, decision_id=self.decision()
        )
        event = LearningEvent.objects.get(decision_id=self.decision())
        if signal.decision_id != event.pk or event.reward is None:
            raise StepFailed("the click was recorded but not joined to its decision as a reward")
        return f"click on the leader recorded; reward {event.reward:g} joined to the decision"

    def journey_policy_health(self) -> str:
        try:
            from discovery.health import policy_health
        except ImportError as exc:
            raise StepFailed(f"discovery.health.policy_health is not available ({exc})") from None
        event = LearningEvent.objects.get(decision_id=self.decision())
        report = policy_health(version=event.policy_version)
        rows = [row for row in report.versions if row.version == event.policy_version]
        if not rows or rows[0].decisions < 1:
            raise StepFailed(f"no row for {event.policy_version} in policy health")
        row = rows[0]
        rate = "n/a" if row.exploration_rate is None else f"{row.exploration_rate:.3f}"
        return f"{row.version}: {row.decisions} decisions, {row.rewarded} rewarded, exploration {rate}"

    # --- cleanup -------------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Delete the throwaway member and what was made for it (its rows cascade with it; the
        queue's history and dead letters name jobs by id, so they go by id)."""
        member = self.member
        try:
            with transaction.atomic():
                # The member's discovery jobs, and the sign-up event creating it published.
                items: list[tuple[str, QuerySet[Any]]] = [
                    (discovery_queue.label, DiscoveryJob.objects.filter(user=member)),
                    (events_queue.label, DiscoveryEvent.objects.filter(user=member)),
                ]
                for label, rows in items:
                    ids = list(rows.values_list("id", flat=True))
                    QueueHistory.objects.filter(queue=label, item_id__in=ids).delete()
                    DeadLetter.objects.filter(queue=label, item_id__in=ids).delete()
                    rows.delete()
                IntentSignal.objects.filter(user=member).delete()
                LearningEvent.objects.filter(user=member).delete()
                UserInterest.objects.filter(user=member).delete()
                DiscoveryJob.objects.filter(user=member).delete()
                User.objects.filter(pk=member.pk).delete()
        except Exception as exc:
            self.failures += 1
            self.stdout.write(
                self.style.ERROR(f"FAIL  cleanup: {type(exc).__name__}: {exc} (member {member.username})")
            )
            return
        self.stdout.write(f"cleanup: removed {member.username} and its rows")
