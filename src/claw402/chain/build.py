"""Compile the Solidity contracts into the committed artifacts.

`python -m claw402.chain.build` rewrites `artifacts/<Contract>.json`; `--check` only reports
whether they match the sources. Compilation is offline and deterministic: the npm `solc`
(solcjs) package pinned in package.json, fixed settings, sorted output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from claw402.nodetools import node_modules

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACTS = ("ClawUSD", "Multicall3", "BatchSettlement", "ERC3009DepositCollector")

# Cancun runs on anvil, Base and every chain x402 targets today; pinning it keeps the
# bytecode independent of solc's moving default.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}

# solcjs's own CLI prints chatter on stdout; calling its API keeps stdout pure JSON.
_NODE_COMPILE = """
const solc = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({version: solc.version(), output}));
});
"""


class CompileError(RuntimeError):
    pass


def solc_path() -> Path:
    """The solcjs package directory; raises NodeToolMissing when node_modules is absent."""
    path = node_modules() / "solc"
    if not path.is_dir():
        raise CompileError(f"solc is not installed in {node_modules()}: run `npm ci`")
    return path


def compile_contracts() -> dict[str, dict[str, Any]]:
    """Compile every contract in `contracts/` and return its artifact, keyed by name."""
    sources = {f"{name}.sol": (CONTRACTS_DIR / f"{name}.sol").read_text() for name in CONTRACTS}
    standard_input = {
        "language": "Solidity",
        "sources": {path: {"content": text} for path, text in sources.items()},
        "settings": SETTINGS,
    }
    proc = subprocess.run(
        ["node", "-e", _NODE_COMPILE, str(solc_path())],
        input=json.dumps(standard_input, sort_keys=True),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"solcjs failed: {proc.stderr.strip()}")
    result = json.loads(proc.stdout)
    output = result["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))

    artifacts = {}
    for name in CONTRACTS:
        path = f"{name}.sol"
        compiled = output["contracts"][path][name]
        artifacts[name] = {
            "contractName": name,
            "sourcePath": f"contracts/{path}",
            "sourceSha256": hashlib.sha256(sources[path].encode()).hexdigest(),
            "compiler": {"name": "solcjs", "version": result["version"], "settings": SETTINGS},
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """The exact text committed for an artifact (stable key order, trailing newline)."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def stale_artifacts(artifacts: dict[str, dict[str, Any]]) -> list[str]:
    """Names whose committed file differs from a fresh compilation."""
    stale = []
    for name, artifact in artifacts.items():
        path = ARTIFACTS_DIR / f"{name}.json"
        if not path.exists() or path.read_text() != render(artifact):
            stale.append(name)
    return stale


def write_artifacts(artifacts: dict[str, dict[str, Any]]) -> list[Path]:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    written = []
    for name, artifact in artifacts.items():
        path = ARTIFACTS_DIR / f"{name}.json"
        path.write_text(render(artifact))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m claw402.chain.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if artifacts are stale")
    args = parser.parse_args(argv)
    artifacts = compile_contracts()
    if args.check:
        stale = stale_artifacts(artifacts)
        if stale:
            print(f"stale artifacts: {', '.join(stale)} (run python -m claw402.chain.build)")
            return 1
        print("artifacts match sources")
        return 0
    for path in write_artifacts(artifacts):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
