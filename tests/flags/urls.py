"""A page that reads one flag through waffle, as a template or view would."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from waffle import flag_is_active


def flag_page(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse("on" if flag_is_active(request, name) else "off")


urlpatterns = [path("flag/<str:name>", flag_page)]
