"""The one error shape: whatever DRF nests, ``fields`` maps a dotted path to plain messages."""

from __future__ import annotations

from django.db import OperationalError
from rest_framework import serializers

from matchplatform.exceptions import ErrorCode, exception_handler


class Item(serializers.Serializer):
    name = serializers.CharField()


class Order(serializers.Serializer):
    title = serializers.CharField()
    items = Item(many=True)
    tags = serializers.ListField(child=serializers.IntegerField())


def error_for(data: object) -> dict:
    body = Order(data=data)
    assert not body.is_valid()
    response = exception_handler(serializers.ValidationError(body.errors), {})
    assert response is not None and response.status_code == 400
    return response.data["error"]


def test_nested_and_list_errors_are_flattened_to_dotted_paths_of_plain_messages():
    error = error_for({"title": "", "items": [{"name": "ok"}, {}], "tags": [1, "x"]})
    assert error["code"] in set(ErrorCode)
    assert set(error["fields"]) == {"title", "items.1.name", "tags.1"}
    for messages in error["fields"].values():
        assert messages and all(type(m) is str and "ErrorDetail" not in m for m in messages)
    assert error["message"].startswith("title: ")


def test_a_top_level_field_error_keeps_its_name():
    error = error_for({"items": [], "tags": []})
    assert error["fields"] == {"title": ["This field is required."]}


def test_a_database_that_cannot_be_reached_is_a_503_with_retry_after_not_a_500(settings):
    response = exception_handler(OperationalError("connection refused"), {})
    assert response is not None
    assert (response.status_code, response.data["error"]["code"]) == (503, ErrorCode.UNAVAILABLE)
    assert response["Retry-After"] == str(settings.DB_POOL_RETRY_AFTER_SECONDS)
