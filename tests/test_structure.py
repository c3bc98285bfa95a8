"""Issue 19's structure rules that code can check: short modules and one name per public class."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).parents[1] / "src/claw402"
MAX_LINES = 420  # "under ~400": a little slack, so a docstring line does not fail a build


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_is_short():
    long = {
        str(path.relative_to(SRC)): lines
        for path in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_each_public_class_name_names_one_class():
    where: dict[str, list[str]] = defaultdict(list)
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(str(path.relative_to(SRC)))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not shared, shared
