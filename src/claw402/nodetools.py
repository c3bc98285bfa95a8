"""Find the Node-side binaries 402claw runs (anvil, workerd, solc, node scripts).

They come from the `package.json` / `package-lock.json` that ship inside the package
(`claw402/node`; the checkout's root files point at them). We look in `CLAW402_NODE_MODULES`,
then in a `node_modules` beside any parent of the working directory or of this package (a
checkout after `npm ci`), and else in a per-user cache (`CLAW402_NODE_CACHE`, else
`$XDG_CACHE_HOME/402claw/node`, else `~/.cache/402claw/node`), filled with `npm ci` on first
use: a `402claw` installed from a wheel has no checkout to look in.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

# Where each tool's executable lives inside node_modules (npm's .bin shims need node; these don't).
_BINARIES = {
    "anvil": "@foundry-rs/anvil-linux-amd64/bin/anvil",
    "workerd": "@cloudflare/workerd-linux-64/bin/workerd",
}
MANIFEST = Path(__file__).resolve().parent / "node"  # package.json and package-lock.json
_DONE = ".claw402-complete"  # written last: a cache folder without it is not used
_PACKAGE_NAME = b'"402claw-runtime"'


class NodeToolMissing(RuntimeError):
    pass


@cache
def node_modules() -> Path:
    env = os.environ.get("CLAW402_NODE_MODULES")
    if env:
        if Path(env).is_dir():
            return Path(env)
        raise NodeToolMissing(f"CLAW402_NODE_MODULES={env} is not a folder")
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            if _ours(parent / "node_modules"):
                return parent / "node_modules"
    return cached_node_modules()


def _ours(path: Path) -> bool:
    """A node_modules that `npm ci` made from our package.json (not some other project's)."""
    try:
        with (path / ".package-lock.json").open("rb") as f:
            return _PACKAGE_NAME in f.read(4096)
    except OSError:
        return False


def cache_root() -> Path:
    env = os.environ.get("CLAW402_NODE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "402claw" / "node"


def cached_node_modules() -> Path:
    """The cache's node_modules for the shipped lock file, installed with `npm ci` if absent."""
    lock = (MANIFEST / "package-lock.json").read_bytes()
    target = cache_root() / hashlib.sha256(lock).hexdigest()[:16]
    if (target / _DONE).exists():
        return target / "node_modules"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # one install at a time; the others wait for it
        if not (target / _DONE).exists():
            _install(target)
    return target / "node_modules"


def _install(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeToolMissing(
            f"402claw needs anvil and workerd from npm, and npm is not installed: {_npm_hint()}"
        )
    print(
        f"402claw: first use: installing its Node tools (anvil, workerd, solc) with npm ci "
        f"into {target}",
        file=sys.stderr,
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(MANIFEST / name, work / name)
        done = subprocess.run(
            [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,  # what 402claw prints on stdout stays its own (--json)
            check=False,
        )
        if done.returncode != 0:
            raise NodeToolMissing(f"npm ci failed (exit {done.returncode}) in {work}")
        (work / _DONE).touch()
        shutil.rmtree(target, ignore_errors=True)  # a half-made folder of an interrupted run
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _npm_hint() -> str:
    if shutil.which("apt-get"):
        return "install it with `sudo apt-get install -y nodejs npm`, then run 402claw again"
    if shutil.which("brew"):
        return "install it with `brew install node`, then run 402claw again"
    return "install Node.js 20 or later (it comes with npm), then run 402claw again"


def binary(name: str) -> str:
    """Absolute path of a native tool shipped through npm, falling back to PATH."""
    rel = _BINARIES.get(name)
    if rel is None:
        found = shutil.which(name)
        if found:
            return found
        raise NodeToolMissing(f"{name} not found on PATH")
    try:
        root = node_modules()
    except NodeToolMissing:
        found = shutil.which(name)
        if found:
            return found
        raise
    if (root / rel).exists():
        return str(root / rel)
    found = shutil.which(name)
    if found:
        return found
    raise NodeToolMissing(f"{name} not found in {root}: run `npm ci` in {root.parent}")
