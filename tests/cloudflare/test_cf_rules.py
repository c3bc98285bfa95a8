"""The dispatch Worker's rules (failure statuses, claim statuses, the correlation-id pattern,
slug rules) are the Python ones, generated into rules.js, never spelled in the templates."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from claw402.cloudflare.dispatcher import rules_module, rules_values
from claw402.dispatch.errors import STATUS
from claw402.dispatch.naming import CORRELATION_ID_RE, SLUG_RE

TEMPLATES = Path(__file__).parents[2] / "src/claw402/cloudflare/templates"
READ = """
const r = await import(process.argv[1]);
const ids = JSON.parse(process.argv[2]);
console.log(JSON.stringify({
  STATUS: r.STATUS, CLAIM_STATUS: r.CLAIM_STATUS, RESERVED_SLUGS: [...r.RESERVED_SLUGS].sort(),
  ids: ids.map((id) => r.REQUEST_ID_RE.test(id)), slugs: ids.map((id) => r.SLUG_RE.test(id)),
}));
"""
PROBES = ["abc", "a.b:c-d_e", "", "x" * 64, "x" * 65, "a b", "a/b", "ünï", "acme", "-acme", "a--b"]


def test_rules_js_reads_back_as_the_python_rules(tmp_path):
    path = tmp_path / "rules.js"
    path.write_bytes(rules_module().content)
    out = subprocess.run(
        ["node", "--input-type=module", "-e", READ, str(path), json.dumps(PROBES)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    got, want = json.loads(out.stdout), rules_values()
    assert got["STATUS"] == STATUS == want["STATUS"]
    assert got["CLAIM_STATUS"] == want["CLAIM_STATUS"]
    assert got["RESERVED_SLUGS"] == want["RESERVED_SLUGS"]
    assert got["ids"] == [CORRELATION_ID_RE.fullmatch(p) is not None for p in PROBES]
    assert got["slugs"] == [SLUG_RE.fullmatch(p) is not None for p in PROBES]


def test_no_template_spells_a_failure_status_or_a_claim_status():
    for path in TEMPLATES.glob("*.js"):
        source = path.read_text()
        assert not re.search(r"\b(?:tenant_not_found|tenant_worker_failure)\s*:\s*\d", source), (
            path.name
        )  # a local copy of the status table
        assert not re.search(r"errorResponse\(\s*5\d\d\s*,\s*\"tenant_", source), path.name
        assert not re.search(r"status(?:\s*===|\s*:)\s*\"(?:claimed|pending|settled)\"", source), (
            path.name
        )
        assert not re.search(r"mark\([^,]+,\s*\"(?:claimed|pending|settled)\"", source), path.name
