from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "discovery"
    verbose_name = "Discovery and learning"

    def ready(self) -> None:
        from discovery import configs, queue  # noqa: F401 - the ranker's config names, the discovery queue
