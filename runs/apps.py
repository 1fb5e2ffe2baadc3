from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Match runs"

    def ready(self) -> None:
        from runs import configs, invariants, queue, signals  # noqa: F401 - registers config, queue, checks, hooks
