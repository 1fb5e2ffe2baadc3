from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "discovery"
    verbose_name = "Discovery and learning"

    def ready(self) -> None:
        from discovery import configs, names, queue  # noqa: F401 - config names, flags' safe values, the queue
