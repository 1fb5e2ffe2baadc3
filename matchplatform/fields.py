"""Strict input fields: what the schema says is what is taken.

JSON's types are taken as they are: a number is not a string (``{"name": 0}`` is a 400, not
the name "0"), ``0`` is not ``false``, ``"5"`` is not 5, and a choice is a string from its
list. Their error messages never repeat the value sent: it is the caller's own, may be
anything (a lone surrogate, a megabyte), and telling them what is allowed is more use to them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers

# What a text field refuses besides its length: NUL (PostgreSQL text cannot hold it) and, where
# it must not be blank, text that is only whitespace (the field trims it to nothing). As "not"
# rather than one pattern: drf-spectacular wraps a blankable field with a pattern in a oneOf
# that "" matches twice (so refuses).
_NO_NUL = {"pattern": "\\x00"}
_NOT_BLANK = "\\S"


class StrictCharField(serializers.CharField):
    """A JSON string, and only a string; ``max_length`` counts the characters as sent (before
    trimming), so a value the schema's ``maxLength`` forbids is never taken."""

    default_error_messages = {
        "invalid_type": "Must be a string.",
        "blank": "Must not be empty.",
        "max_length": "At most {max_length} characters.",
    }

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data is not serializers.empty and data is not None and not isinstance(data, str):
            self.fail("invalid_type")
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().run_validation(data)


class StrictChoiceField(serializers.ChoiceField):
    """A JSON string from the choices; the error lists them instead of echoing the input."""

    default_error_messages = {"invalid_choice": "Must be one of: {allowed}."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or data not in self.choice_strings_to_values:
            self.fail("invalid_choice", allowed=", ".join(self.choice_strings_to_values))
        return self.choice_strings_to_values[data]


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false (or null where allowed), not 0, 1, "yes" or "true"."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string of digits, a float or a boolean."""

    default_error_messages = {"invalid": "Must be a whole number."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictFloatField(serializers.FloatField):
    """A JSON number, not a string of digits or a boolean."""

    default_error_messages = {"invalid": "Must be a number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class StrictCharFieldExtension(OpenApiSerializerFieldExtension):
    """The schema of a StrictCharField: its lengths, and a pattern for what it refuses besides
    (NUL, and only whitespace where it must not be blank)."""

    target_class = StrictCharField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field: StrictCharField = self.target
        schema = build_basic_type(OpenApiTypes.STR)
        assert schema is not None
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        if not field.allow_blank:
            schema["minLength"] = max(field.min_length or 0, 1)
            schema["pattern"] = _NOT_BLANK
        schema["not"] = _NO_NUL
        return schema
