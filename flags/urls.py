from django.urls import path

from flags.api import FlagsApi

urlpatterns = [
    path("flags", FlagsApi.as_view(), name="flags"),
]
