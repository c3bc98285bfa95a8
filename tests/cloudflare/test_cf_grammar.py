"""The tenant Worker's query vocabulary is the Python grammar's, generated, never copied."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from claw402.cloudflare.grammar import grammar_module, grammar_values
from claw402.cloudflare.workerd import template
from claw402.datasets import cursor, values

READ = """
const g = await import(process.argv[1]);
const out = {};
for (const [name, value] of Object.entries(g)) {
  if (value instanceof Set) out[name] = [...value].sort();
  else if (value instanceof RegExp) out[name] = {regex: value.source};
  else if (typeof value === "bigint") out[name] = {bigint: value.toString()};
  else out[name] = value;
}
const probes = JSON.parse(process.argv[2]);
out.matches = Object.fromEntries(
  ["INT_RE", "NUM_RE", "B64URL_RE"].map((n) => [n, probes.map((p) => g[n].test(p))]));
console.log(JSON.stringify(out));
"""
PROBES = [
    "1",
    "-12",
    "+3",
    "1.5",
    ".5",
    "1e3",
    "1e",
    "",
    "abc",
    "a_b-C",
    "1 ",
    " 1",
    "0x10",
    "12345678901234567890",
    "1.",
    "-.5e-3",
    "a=b",
]


@pytest.fixture(scope="module")
def worker_grammar(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("grammar") / "grammar.js"
    path.write_bytes(grammar_module().content)
    out = subprocess.run(
        ["node", "--input-type=module", "-e", READ, str(path), json.dumps(PROBES)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


def test_every_generated_constant_reads_back_in_javascript_as_python_has_it(worker_grammar):
    for name, value in grammar_values().items():
        assert worker_grammar[name] == value, name
    assert worker_grammar["INT64_MIN"] == {"bigint": str(values.INT64_MIN)}
    assert worker_grammar["INT64_MAX"] == {"bigint": str(values.INT64_MAX)}


def test_generated_patterns_accept_exactly_what_python_fullmatch_accepts(worker_grammar):
    for name, module in (("INT_RE", values), ("NUM_RE", values), ("B64URL_RE", cursor)):
        python = [getattr(module, name).fullmatch(p) is not None for p in PROBES]
        assert worker_grammar["matches"][name] == python, name


def test_the_worker_templates_hold_no_copy_of_the_vocabulary():
    """A literal operator list, limit or media type in a template would drift from Python."""
    for name in ("query.js", "output.js", "engine.js", "worker.js"):
        source = template(name).decode()
        assert '"contains", "icontains"' not in source, name  # the operator list
        assert "application/x-ndjson" not in source, name
        assert "a whole number within 64 bits" not in source, name
        assert not re.search(r"\bMAX_\w+ = \d", source), name
