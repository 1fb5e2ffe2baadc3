from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.health import health_status, invariant_outcomes
from ops.models import InvariantState
from ops.selectors import broker_ping, database_ping, queue_depths


class Command(BaseCommand):
    help = (
        "Run every registered invariant and print a table (rates and averages name their sample; "
        "below the minimum they read NOT ENOUGH DATA); exit 1 if any is critical."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--store", action="store_true", help="Also store the results (as beat does).")

    def handle(self, *args: Any, **options: Any) -> None:
        database = database_ping()
        if not database["ok"]:
            raise CommandError(f"database unreachable: {database.get('error')}")
        if options["store"]:
            from ops.notify import alert_threads_join
            from ops.services import invariants_check_and_store

            outcomes = invariants_check_and_store()
            alert_threads_join(timeout=10)  # the alerts it decided leave before the command exits
        else:
            outcomes = invariant_outcomes(live=True)
        broker = broker_ping()
        colours = {
            InvariantState.OK: self.style.SUCCESS,
            InvariantState.INSUFFICIENT_DATA: self.style.SUCCESS,
            InvariantState.WARN: self.style.WARNING,
            InvariantState.CRITICAL: self.style.ERROR,
            InvariantState.ERROR: self.style.ERROR,
        }
        name_w = max([len(o.name) for o in outcomes] + [9])
        state_w = max(len(label) for label in _LABELS.values())
        self.stdout.write(f"{'INVARIANT':<{name_w}}  {'STATE':<{state_w}}  {'VALUE':>10}  DETAIL")
        for o in outcomes:
            value = "" if o.value is None else f"{o.value:g}"
            label = _LABELS.get(o.state, o.state.upper())
            state = colours.get(InvariantState(o.state), str)(f"{label:<{state_w}}")
            detail = o.detail or o.description
            self.stdout.write(f"{o.name:<{name_w}}  {state}  {value:>10}  {detail}")
        self.stdout.write("")
        self.stdout.write(f"database: {database['vendor']} ok")
        self.stdout.write(
            f"broker:   {broker['transport']} " + ("ok" if broker["ok"] else f"DOWN ({broker.get('error')})")
        )
        for queue, depths in queue_depths().items():
            self.stdout.write(f"queue {queue}: " + ", ".join(f"{k}={v}" for k, v in depths.items()))
        self.stdout.write(
            f"status:   {health_status(database_ok=True, broker_ok=bool(broker['ok']), outcomes=outcomes)}"
        )
        critical = [o.name for o in outcomes if o.state == InvariantState.CRITICAL]
        if critical:
            self.stderr.write(self.style.ERROR(f"critical: {', '.join(critical)}"))
            raise SystemExit(1)


_LABELS: dict[str, str] = {
    InvariantState.OK: "OK",
    InvariantState.INSUFFICIENT_DATA: "NOT ENOUGH DATA",
    InvariantState.WARN: "WARN",
    InvariantState.CRITICAL: "CRITICAL",
    InvariantState.ERROR: "ERROR",
}
