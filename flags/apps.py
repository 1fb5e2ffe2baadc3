from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    verbose_name = "Flags and rollout"

    def ready(self) -> None:
        from waffle.models import Sample, Switch

        from flags.config.models import ConfigValue
        from flags.models import Flag
        from flags.snapshot import stamp_m2m_connect, stamp_signals_connect

        # Every write of what the snapshot carries bumps its stamp (flags.snapshot).
        stamp_signals_connect(Flag, Switch, Sample, ConfigValue)
        stamp_m2m_connect(Flag.users.through, Flag.groups.through)

        from flags.snapshot import snapshot_metrics
        from ops.prometheus import prometheus_collector_register

        prometheus_collector_register(snapshot_metrics, name="flags.snapshot")

        from flags.rollouts import rollouts_ready

        rollouts_ready()  # running rollouts in the snapshot, their /metrics, the controller's task
