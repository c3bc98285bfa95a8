"""The dispatch Worker's event kinds are the Python kinds, generated, never spelled in JS."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from claw402.cloudflare.dispatcher import build_dispatcher, kinds_module
from claw402.events.kinds import BY_NAME, KINDS

TEMPLATES = Path(__file__).parents[2] / "src/claw402/cloudflare/templates"
# Where a template names an event's kind: the first argument of `event(...)` or `emit(...)`,
# and what it assigns to a variable called `kind`.
_KIND_ARG = re.compile(r"\b(?:event|emit)\(\s*([^,)]*)")
_KIND_SET = re.compile(r"\bkind\s*=(?![=>])\s*([^;]+);")
_IMPORT = re.compile(r"import\s*\{([^}]*)\}\s*from\s*\"\./kinds\.js\"")
_PASSED_ON = {"kind", "type"}  # a function's parameter, handed on as it came


def kind_problems(source: str) -> list[str]:
    """What in a template names an event kind other than by a constant of kinds.js."""
    imported = {n.strip() for m in _IMPORT.finditer(source) for n in m.group(1).split(",")}
    imported.discard("")
    problems = [
        f"imports {n} that claw402.events.kinds does not define"
        for n in sorted(imported - set(BY_NAME))
    ]
    for match in _KIND_ARG.finditer(source):
        arg = match.group(1).strip()
        if arg and arg not in _PASSED_ON and arg not in imported:
            problems.append(f"{match.group(0)!r}: a kind must be a constant from kinds.js")
    for match in _KIND_SET.finditer(source):
        words = set(re.findall(r"[\"'`]|\b[A-Z][A-Z0-9_]+\b", match.group(1)))
        if words - imported:
            problems.append(f"{match.group(0)!r}: a kind must be a constant from kinds.js")
    return problems


def test_no_template_spells_an_event_kind():
    scanned = 0
    for path in sorted(TEMPLATES.glob("*.js")):
        source = path.read_text()
        assert kind_problems(source) == [], path.name
        scanned += bool(_KIND_ARG.search(source))
    assert scanned >= 2  # dispatcher.js and paywall.js emit events


def test_the_check_catches_a_kind_python_does_not_define():
    assert kind_problems('this.emit("payment_refunded", 402);')
    assert kind_problems("call.emit(`payment_${x}`, 402);")
    assert kind_problems('import { PAYMENT_REFUNDED } from "./kinds.js";\nemit(PAYMENT_REFUNDED);')
    assert kind_problems('const kind = reason ? "dispatch_failure" : DISPATCH_SUCCESS;')
    assert kind_problems(
        'import { DISPATCH_SUCCESS } from "./kinds.js";\n'
        "const kind = reason ? DISPATCH_OOPS : DISPATCH_SUCCESS;"
    )
    assert not kind_problems(
        'import { DISPATCH_SUCCESS, DISPATCH_FAILURE } from "./kinds.js";\n'
        "const kind = reason ? DISPATCH_FAILURE : DISPATCH_SUCCESS;\n"
        "events.push(event(kind, requestId));"
    )


def test_kinds_js_exports_every_python_kind(tmp_path):
    path = tmp_path / "kinds.js"
    path.write_bytes(kinds_module().content)
    read = "const k = await import(process.argv[1]); console.log(JSON.stringify({...k}));"
    out = subprocess.run(
        ["node", "--input-type=module", "-e", read, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(out.stdout) == BY_NAME
    assert set(BY_NAME.values()) == KINDS and len(KINDS) == len(BY_NAME)
    bundle = build_dispatcher([])
    assert bundle.module("kinds.js").content == kinds_module().content
