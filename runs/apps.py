from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Match runs"

    def ready(self) -> None:
        from runs import invariants, queue, signals  # noqa: F401 - registers the queue, checks, worker hooks
