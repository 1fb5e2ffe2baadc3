"""No test module redefines a fixture a conftest gives it: a test reading ``loop_settings``
or ``page`` gets the one the conftest documents, never a local variant with other values
under the same name (give a variant its own name)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _fixtures(path: Path) -> dict[str, int]:
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in node.decorator_list):
            found[node.name] = node.lineno
    return found


def test_no_test_module_shadows_a_conftest_fixture():
    conftests = {path.parent: _fixtures(path) for path in TESTS.rglob("conftest.py")}
    assert conftests[TESTS], "the root conftest defines fixtures"
    shadows = []
    for module in TESTS.rglob("test_*.py"):
        # The conftests that apply to a module: its folder's and every folder above it up to tests/.
        visible = {
            name: folder for folder, names in conftests.items() if module.is_relative_to(folder) for name in names
        }
        shadows += [
            f"{module.relative_to(TESTS)}:{line} {name} (from {visible[name].name}/conftest.py)"
            for name, line in _fixtures(module).items()
            if name in visible
        ]
    assert shadows == []
