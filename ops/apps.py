from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from ops import invariants_builtin, signals  # noqa: F401 - registers checks and worker hooks
        from ops.slo import gate_metrics, invariants  # noqa: F401 - registers the SLOs' gates and checks
