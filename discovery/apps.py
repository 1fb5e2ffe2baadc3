from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "discovery"
    verbose_name = "Discovery and learning"

    def ready(self) -> None:
        # Registrations made at import: the events queue and its topics' handlers (and the
        # sign-up hook), the gate metrics of policy health and OPE, the SLOs and invariants of
        # the runbook's alert table, and the row-security hooks.
        from discovery import (  # noqa: F401 - config names, flags' safe values, the queue  # noqa: F401
            configs,
            hooks_events,
            hooks_health,
            hooks_operating,
            hooks_security,
            names,
            queue,
        )
