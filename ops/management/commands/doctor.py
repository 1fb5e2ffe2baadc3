from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.health import invariant_outcomes
from ops.models import InvariantState
from ops.selectors import broker_ping, database_ping, queue_depths


class Command(BaseCommand):
    help = "Run every registered invariant and print a table; exit 1 if any is critical."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--store", action="store_true", help="Also store the results (as beat does).")

    def handle(self, *args: Any, **options: Any) -> None:
        database = database_ping()
        if not database["ok"]:
            raise CommandError(f"database unreachable: {database.get('error')}")
        if options["store"]:
            from ops.services import invariants_check_and_store

            outcomes = invariants_check_and_store()
        else:
            outcomes = invariant_outcomes(live=True)
        broker = broker_ping()
        colours = {
            InvariantState.OK: self.style.SUCCESS,
            InvariantState.WARN: self.style.WARNING,
            InvariantState.CRITICAL: self.style.ERROR,
            InvariantState.ERROR: self.style.ERROR,
        }
        name_w = max([len(o.name) for o in outcomes] + [9])
        self.stdout.write(f"{'INVARIANT':<{name_w}}  {'STATE':<8}  {'VALUE':>10}  DETAIL")
        for o in outcomes:
            value = "" if o.value is None else f"{o.value:g}"
            state = colours.get(InvariantState(o.state), str)(f"{o.state.upper():<8}")
            detail = o.detail or o.description
            self.stdout.write(f"{o.name:<{name_w}}  {state}  {value:>10}  {detail}")
        self.stdout.write("")
        self.stdout.write(f"database: {database['vendor']} ok")
        self.stdout.write(
            f"broker:   {broker['transport']} " + ("ok" if broker["ok"] else f"DOWN ({broker.get('error')})")
        )
        for label, depths in queue_depths().items():
            self.stdout.write(f"queue {label}: " + ", ".join(f"{k}={v}" for k, v in depths.items()))
        critical = [o.name for o in outcomes if o.state == InvariantState.CRITICAL]
        if critical:
            self.stderr.write(self.style.ERROR(f"critical: {', '.join(critical)}"))
            raise SystemExit(1)
