from django.apps import AppConfig


class ProposalsConfig(AppConfig):
    name = "proposals"
    verbose_name = "Proposals and matches"

    def ready(self) -> None:
        from proposals import invariants  # noqa: F401 - registers the loop's checks
