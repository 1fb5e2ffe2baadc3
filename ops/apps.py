from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from ops import (  # noqa: F401 - registers checks and worker hooks
            invariant_gates,
            invariants_builtin,
            signals,
        )
        from ops.slo import gate_metrics, invariants  # noqa: F401 - registers the SLOs' gates and checks
