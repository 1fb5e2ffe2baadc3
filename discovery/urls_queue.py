from django.urls import URLPattern, URLResolver, path

from discovery.api_queue import QueueDeadLettersApi, QueueDeadLettersRequeueApi, QueueHealthApi, QueueWorkerApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("queue-worker", QueueWorkerApi.as_view(), name="queue-worker"),
    path("staff/queues/<str:queue_name>/health", QueueHealthApi.as_view(), name="discovery-queue-health"),
    path(
        "staff/queues/<str:queue_name>/dead-letters", QueueDeadLettersApi.as_view(), name="discovery-queue-dead-letters"
    ),
    path(
        "staff/queues/<str:queue_name>/dead-letters/requeue",
        QueueDeadLettersRequeueApi.as_view(),
        name="discovery-queue-dead-letters-requeue",
    ),
]
