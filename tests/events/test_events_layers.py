"""Where events sit: the runtime-neutral parts load without SQL, and `dispatch` needs none."""

from __future__ import annotations

import ast
from pathlib import Path

from pyrun import python_output

SRC = Path(__file__).parents[2] / "src/claw402"


def test_kinds_and_the_compact_format_import_no_sql():
    code = (
        "import sys\n"
        "import claw402.events.kinds, claw402.events.compact\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'orjson')"
        " or m.startswith(('claw402.registry', 'claw402.events.store'))))"
    )
    assert python_output(code) == "[]"


def test_dispatch_imports_nothing_of_events():
    for path in sorted((SRC / "dispatch").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.startswith("claw402.events")], path.name
