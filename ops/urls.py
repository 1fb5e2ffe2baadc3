from django.urls import path

from ops.api import HealthApi

urlpatterns = [path("health", HealthApi.as_view(), name="health")]
