"""``manage.py ope_evaluate --version epsilon_greedy_v1 --epsilon 0.05 [--scoring popularity]``:
evaluate a candidate epsilon-greedy policy off-policy on the logged decisions of one policy
version (IPS, SNIPS, DR with 95 % intervals; see discovery.ope_eval)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from discovery.ope_eval import SCORING_AFFINITY, SCORINGS, TargetPolicy, ope_evaluate, ope_result_as_json
from matchplatform.exceptions import ApplicationError


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"--{name}: not an ISO 8601 date and time: {value!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


class Command(BaseCommand):
    help = "Evaluate a candidate ranker policy off-policy (IPS, SNIPS, DR) on one policy version's logged decisions."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names the policy version here: it replaces Django's "print Django's version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", dest="policy_version", required=True, help="The ONE logged version to use")
        parser.add_argument("--epsilon", type=float, required=True, help="The candidate's epsilon (0..1)")
        parser.add_argument("--scoring", choices=SCORINGS, default=SCORING_AFFINITY, help="The candidate's scoring")
        parser.add_argument("--since", help="ISO 8601 (default: OPE_WINDOW_HOURS before --until)")
        parser.add_argument("--until", help="ISO 8601 (default: now)")
        parser.add_argument("--max-decisions", type=int, help="Read at most this many (newest first)")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        show = not options["no_progress"] and not options["json"]

        def progress(items: Iterable[Any], total: int) -> Iterable[Any]:
            return tqdm(items, total=total, desc="decisions", unit="decision", disable=not show)

        try:
            candidate = TargetPolicy(epsilon=options["epsilon"], scoring=options["scoring"])
            result = ope_evaluate(
                version=options["policy_version"],
                candidate=candidate,
                since=_when(options["since"], "since"),
                until=_when(options["until"], "until"),
                max_decisions=options["max_decisions"],
                progress=progress,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        data = ope_result_as_json(result)
        if options["json"]:
            self.stdout.write(json.dumps(data, default=str, indent=2))
            return
        out = self.stdout.write
        out(f"version {result.version}, {result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} UTC")
        out(
            f"candidate: epsilon {candidate.epsilon:g}, scoring {candidate.scoring}\n"
            f"decisions {result.decisions}, randomized {result.randomized}, still in their window "
            f"{result.open_window}, read {result.read}, usable {result.usable}"
        )
        observed = "-" if result.observed_mean is None else f"{result.observed_mean:.5f}"
        out(f"logged policy's observed mean reward: {observed}")
        if result.effective_sample_size is not None:
            out(
                f"effective sample size {result.effective_sample_size:,.1f} of {result.usable}, "
                f"mean importance weight {result.mean_importance_weight:.4f}"
            )
        for name, estimate in result.estimates.items():
            out(
                f"{name:>6}: {estimate.value:.5f}  95 % [{estimate.lower:.5f}, {estimate.upper:.5f}]  "
                f"se {estimate.std_error:.5f}"
            )
        for note in result.notes:
            out(f"note: {note}")
