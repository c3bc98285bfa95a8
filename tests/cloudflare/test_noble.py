"""The @noble files the dispatcher ships (cloudflare/noble.py) are npm's, verbatim, and the
flat modules made from them import only each other."""

from __future__ import annotations

import json
import re

import pytest

from claw402.cloudflare.noble import ROOTS, VERSIONS, closure, module_name, noble_modules
from claw402.cloudflare.workerd import template
from claw402.nodetools import NodeToolMissing, node_modules


def test_the_vendored_files_are_the_installed_packages() -> None:
    try:
        root = node_modules() / "@noble"
    except NodeToolMissing:
        pytest.skip("no node_modules to compare with")
    for package, version in VERSIONS.items():
        assert json.loads((root / package / "package.json").read_text())["version"] == version

    def installed(path: str) -> bytes:
        package, rest = path.split("/", 1)
        return (root / package / "esm" / rest).read_bytes()

    paths = closure(installed)
    assert paths == closure(lambda p: template(f"noble/{p}"))  # nothing missing, nothing extra
    for path in paths:
        assert template(f"noble/{path}") == installed(path), path


def test_the_flat_modules_import_only_each_other() -> None:
    modules = noble_modules()
    names = {m.name for m in modules}
    assert {module_name(r) for r in ROOTS} <= names
    statement = re.compile(r"""^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]""", re.M)
    for module in modules:
        text = module.content.decode()
        specifiers = statement.findall(text)
        assert all(s.startswith("./") and s[2:] in names for s in specifiers), module.name
        assert "sourceMappingURL" not in text
