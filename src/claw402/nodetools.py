"""Find the Node-side binaries 402claw runs (anvil, workerd, solc, node scripts).

They come from the repository's `package.json` (`npm ci`). We look in `CLAW402_NODE_MODULES`,
then in a `node_modules` beside any parent of the working directory or of this package.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

# Where each tool's executable lives inside node_modules (npm's .bin shims need node; these don't).
_BINARIES = {
    "anvil": "@foundry-rs/anvil-linux-amd64/bin/anvil",
    "workerd": "@cloudflare/workerd-linux-64/bin/workerd",
}


class NodeToolMissing(RuntimeError):
    pass


@cache
def node_modules() -> Path:
    env = os.environ.get("CLAW402_NODE_MODULES")
    candidates = [Path(env)] if env else []
    for start in (Path.cwd(), Path(__file__).resolve()):
        candidates += [p / "node_modules" for p in (start, *start.parents)]
    for path in candidates:
        if path.is_dir():
            return path
    raise NodeToolMissing(
        "node_modules not found: run `npm ci` in the 402claw checkout or set CLAW402_NODE_MODULES"
    )


def binary(name: str) -> str:
    """Absolute path of a native tool shipped through npm, falling back to PATH."""
    rel = _BINARIES.get(name)
    if rel is not None:
        try:
            path = node_modules() / rel
            if path.exists():
                return str(path)
        except NodeToolMissing:
            pass
    found = shutil.which(name)
    if found:
        return found
    raise NodeToolMissing(f"{name} not found: run `npm ci` in the 402claw checkout")
