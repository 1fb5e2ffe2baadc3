"""A finalizer process, started by ``bench.proposals``:

    python -m bench.proposals_support.finalizer --task ours|tick|naive|setbased --mode loop|beat
        --period S --first-at EPOCH --until EPOCH --out FILE [--claim-dir DIR]

* ``--task ours``: ``proposals.voting.services.proposals_finalize_due()``;
  ``tick``: the real beat task ``proposals.tasks.finalize``, called in-process;
  ``naive``: ``naive_finalize_due`` below; ``setbased``: the
  prototype in ``bench/proposals_support/setbased.py``.
* ``--mode loop``: this process calls the task at ``first_at + k * period``; a slot missed
  while busy is skipped (the next call starts at the next slot).
* ``--mode beat``: slot ``k`` is one beat message; whichever process of the group is free
  first takes it (an ``O_EXCL`` file in ``--claim-dir`` per slot stands in for Celery
  handing the message to one worker). A slot missed while every process was busy is taken
  late rather than skipped, as a queued message would be.

Prints ``READY`` once Django and its database connection are up; writes one JSON line per
call (slot, start, end, how many finalized) to ``--out``; exits at ``--until`` or on SIGTERM
(after the call in progress)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

from bench.common.env import django_setup

_stop = False


def _on_term(signum: int, frame: object) -> None:
    global _stop
    _stop = True


def naive_finalize_due() -> int:
    """What a first implementation does: list what is due, then per proposal read it, count
    its votes with a query, and UPDATE it unconditionally (no SKIP LOCKED, no status
    condition), one transaction per proposal. The side effects are the services' own."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import transaction
    from django.db.models import Count, F, Q
    from django.db.models.functions import Now

    from proposals.models import Conversation, Match, Profile, Proposal, ProposalStatus, ProposalVoter, Vote

    due = list(
        Proposal.objects.filter(status=ProposalStatus.VOTING, deadline__lte=Now())
        .order_by("deadline", "id")
        .values_list("id", flat=True)
    )
    for pk in due:
        with transaction.atomic():
            proposal = Proposal.objects.get(pk=pk)
            counts = Vote.objects.filter(proposal_id=pk).aggregate(
                yes=Count("id", filter=Q(choice=Vote.Choice.YES)), no=Count("id", filter=Q(choice=Vote.Choice.NO))
            )
            approved = counts["yes"] > counts["no"]
            status = ProposalStatus.APPROVED if approved else ProposalStatus.REJECTED
            Proposal.objects.filter(pk=pk).update(status=status, finalized_at=Now())
            unvoted = ProposalVoter.objects.filter(proposal_id=pk, voted=False).values_list("voter_id", flat=True)
            Profile.objects.filter(user_id__in=list(unvoted), open_assignments__gt=0).update(
                open_assignments=F("open_assignments") - 1
            )
            if approved:
                match = Match.objects.create(
                    proposal=proposal,
                    member_a_id=proposal.member_a_id,
                    member_b_id=proposal.member_b_id,
                    expires_at=Now() + timedelta(seconds=settings.PROPOSALS_MATCH_TTL_SECONDS),
                )
                Conversation.objects.create(match=match)
    return len(due)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=("ours", "tick", "naive", "setbased"), required=True)
    parser.add_argument("--mode", choices=("loop", "beat"), required=True)
    parser.add_argument("--period", type=float, required=True)
    parser.add_argument("--first-at", type=float, required=True)
    parser.add_argument("--until", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--claim-dir", default="")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    django_setup()
    from django.db import connection

    from bench.proposals_support.setbased import finalize_due_setbased
    from proposals.tasks import finalize
    from proposals.voting.services import proposals_finalize_due

    def run_task() -> int:
        if args.task == "ours":
            return proposals_finalize_due()
        if args.task == "tick":
            return int(finalize())
        if args.task == "setbased":
            return finalize_due_setbased()
        return naive_finalize_due()

    connection.ensure_connection()
    print("READY", flush=True)
    claim_dir = Path(args.claim_dir) if args.claim_dir else None
    k = 0
    with open(args.out, "a", encoding="utf-8") as out:
        while not _stop and time.time() < args.until:
            slot = args.first_at + k * args.period
            wait = slot - time.time()
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            if args.mode == "beat":
                assert claim_dir is not None
                try:
                    os.close(os.open(claim_dir / f"slot-{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    k += 1
                    continue
            started = time.time()
            error = ""
            try:
                done = run_task()
            except Exception as exc:  # recorded, then the loop goes on (a beat tick would too)
                done, error = 0, f"{type(exc).__name__}: {exc}"[:300]
                connection.close()
            ended = time.time()
            out.write(json.dumps({"slot": slot, "start": started, "end": ended, "n": done, "error": error}) + "\n")
            out.flush()
            if args.mode == "beat":
                k += 1
            else:
                k = max(k + 1, int((time.time() - args.first_at) // args.period) + 1)
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
