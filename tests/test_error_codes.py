"""Every error the platform raises names its code from one enumeration, ``ErrorCode``.

Walks the source of every app (migrations aside) and finds each place an API error is built:
a call to a subclass of ``ApplicationError`` or of DRF's ``APIException``, whatever name it is
imported under. With no code given, the class's own default must be a member. A code given
to a DRF exception (which takes any text) must be written as ``ErrorCode.<MEMBER>``; one given
to an ``ApplicationError`` is typed ``ErrorCode`` (mypy checks the call) and converted with
``ErrorCode(code)`` (a code outside the enumeration raises at once). A new module is covered
without editing this test.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.exceptions import APIException

from matchplatform.exceptions import ApplicationError, ErrorCode

APPS = ("matchplatform", "ops", "runs", "proposals", "flags")


def _modules() -> list[Path]:
    root = Path(settings.BASE_DIR)
    return sorted(
        p.relative_to(root)
        for app in APPS
        for p in (root / app).rglob("*.py")
        if "migrations" not in p.parts and p.name != "settings.py"
    )


def _error_class(module: object, func: ast.expr) -> type | None:
    """The exception class a call's callee names in that module, if it is an API error."""
    value: object = module
    for part in ast.unparse(func).split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    if isinstance(value, type) and issubclass(value, (ApplicationError, APIException)):
        return value
    return None


def _default_code(cls: type) -> object:
    return cls.code if issubclass(cls, ApplicationError) else cls.default_code  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", _modules(), ids=str)
def test_every_api_error_names_a_member_of_error_code(path):
    module = importlib.import_module(".".join(path.with_suffix("").parts).removesuffix(".__init__"))
    tree = ast.parse((Path(settings.BASE_DIR) / path).read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        cls = _error_class(module, node.func)
        if cls is None:
            continue
        code = next((k.value for k in node.keywords if k.arg == "code"), None)
        where = f"{path}:{node.lineno} {ast.unparse(node.func)}"
        if code is None:
            assert _default_code(cls) in set(ErrorCode), f"{where}: no code, and its class's default is not a member"
        elif issubclass(cls, APIException):
            is_member = isinstance(code, ast.Attribute) and getattr(code.value, "id", None) == "ErrorCode"
            assert is_member, f"{where}: code={ast.unparse(code)} is not written as ErrorCode.<MEMBER>"
            assert code.attr in ErrorCode.__members__, f"{where}: ErrorCode has no {code.attr}"


def test_the_walk_finds_the_raises():
    """The walk is not vacuous: it sees the errors of each app's services."""
    seen = set()
    for path in _modules():
        module = importlib.import_module(".".join(path.with_suffix("").parts).removesuffix(".__init__"))
        for node in ast.walk(ast.parse((Path(settings.BASE_DIR) / path).read_text())):
            if isinstance(node, ast.Call) and _error_class(module, node.func) is not None:
                seen.add(path.parts[0])
    assert {"runs", "proposals", "ops", "matchplatform"} <= seen
