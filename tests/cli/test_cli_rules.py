"""The CLI holds no business rules: no cli/ module writes the audit log or decides a scope.

Those decisions live in `claw402.control` (one function per operation), where a second front
door finds them; the commands parse, call, and print. Checked on the syntax tree, so a rule
slipped back into a command fails here whatever it is named locally.
"""

from __future__ import annotations

import ast
from pathlib import Path

import claw402.cli
from claw402.control import authz, keys

CLI = Path(claw402.cli.__file__).parent
SCOPES = {name for name in dir(keys) if getattr(keys, name) in keys.SCOPES and name.isupper()}
# deciding who may: the control plane's own helpers
DECIDERS = {
    "authorize",
    "require_owner",
    "reader",
    "readable",
    "may_read",
    "event_tenants",
    "begin_change",
}
AUDIT_WRITERS = {"append", "record"}


def findings(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module in ("claw402.control.audit", "claw402.control.authz"):
                found.append(f"imports {node.module}")
            if node.module == "claw402.control" and names & {"audit", "authz"}:
                found.append(f"imports {sorted(names & {'audit', 'authz'})} from control")
            if names & (SCOPES | DECIDERS):
                found.append(f"imports {sorted(names & (SCOPES | DECIDERS))}")
        elif isinstance(node, ast.Import):
            found += [
                f"imports {a.name}"
                for a in node.names
                if a.name.startswith(("claw402.control.audit", "claw402.control.authz"))
            ]
        elif isinstance(node, ast.Attribute):
            if node.attr in SCOPES:
                found.append(f"uses the scope .{node.attr}")
            if node.attr in DECIDERS:
                found.append(f"calls .{node.attr}")
            if (
                node.attr in AUDIT_WRITERS
                and isinstance(node.value, ast.Name)
                and node.value.id == "audit"
            ):
                found.append(f"writes audit.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in SCOPES | DECIDERS:
            found.append(f"names {node.id}")
    return found


def test_the_scopes_and_deciders_are_what_control_defines():
    assert {"READ", "DEPLOY", "WITHDRAW", "ADMIN"} == SCOPES
    assert all(callable(getattr(authz, name, None)) for name in DECIDERS - {"begin_change"})


def test_cli_modules_make_no_scope_decision_and_write_no_audit_entry():
    problems = {
        path.name: findings(ast.parse(path.read_text(), str(path)))
        for path in sorted(CLI.glob("*.py"))
    }
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_check_sees_a_rule_written_in_a_command():
    """The checker itself: each way a rule could come back is caught."""
    samples = {
        "from claw402.control.authz import authorize": "imports claw402.control.authz",
        "from claw402.control import audit": "imports ['audit'] from control",
        "from claw402.control.keys import ADMIN": "imports ['ADMIN']",
        "keys.WITHDRAW": "uses the scope .WITHDRAW",
        "audit.append(conn, 'x', 'y')": "writes audit.append",
        "authz.require_owner(a, b, c)": "calls .require_owner",
    }
    for code, expected in samples.items():
        assert expected in findings(ast.parse(code)), code
