"""The audited secp256k1 and keccak-256 code the dispatch Worker proves payers with.

Workers' WebCrypto has no secp256k1, so the edge limits step (`templates/proof.js`) recovers
signers with @noble/curves and @noble/hashes (the ESM builds viem uses). `templates/noble/`
holds the files it needs verbatim, as npm ships them (`tests/cloudflare/test_noble.py` holds
them to node_modules' copies), so building a dispatcher needs no node_modules. At build time
each file becomes one flat module, `noble-<package>-<path>.js`, its imports (relative and the
bare `@noble/hashes/...`) rewritten to those names: flat relative names resolve the same under
workerd and Cloudflare, and a bundle folder keeps one file per module.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from functools import cache

from claw402.cloudflare.bundle import Module
from claw402.cloudflare.workerd import template

# What templates/proof.js imports; everything else is what these import.
ROOTS = ("curves/secp256k1.js", "hashes/sha3.js")
VERSIONS = {"curves": "1.9.1", "hashes": "1.8.0"}
_IMPORT = re.compile(
    r"""((?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*|import\s*)(['"])([^'"]+)\2"""
)
_SOURCE_MAP = re.compile(rb"\n//# sourceMappingURL=\S+\s*$")


def module_name(path: str) -> str:
    """`curves/abstract/modular.js` -> `noble-curves-abstract-modular.js`."""
    return "noble-" + path.replace("/", "-")


def resolve(importer: str, specifier: str) -> str:
    """The vendored path (`hashes/sha2.js`) an import in `importer` names."""
    if specifier.startswith("@noble/"):
        package, _, rest = specifier.removeprefix("@noble/").partition("/")
        return f"{package}/{rest.removesuffix('.js')}.js"
    if specifier.startswith("."):
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), specifier))
    raise ValueError(f"{importer}: unexpected import {specifier!r}")


def imports(path: str, text: str) -> list[str]:
    return [resolve(path, m.group(3)) for m in _IMPORT.finditer(text)]


def rewrite(path: str, text: str) -> str:
    def flat(match: re.Match[str]) -> str:
        quote = match.group(2)
        return f"{match.group(1)}{quote}./{module_name(resolve(path, match.group(3)))}{quote}"

    return _IMPORT.sub(flat, text)


def closure(read: Callable[[str], bytes], roots: tuple[str, ...] = ROOTS) -> list[str]:
    """Every vendored path the roots need, in a stable order."""
    seen: list[str] = []
    todo = list(roots)
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        todo += imports(path, read(path).decode())
    return sorted(seen)


def _vendored(path: str) -> bytes:
    return template(f"noble/{path}")


@cache
def noble_modules() -> tuple[Module, ...]:
    """The flat modules templates/proof.js imports (`./noble-curves-secp256k1.js`, ...)."""
    modules = []
    for path in closure(_vendored):
        text = _SOURCE_MAP.sub(b"\n", _vendored(path)).decode()
        modules.append(Module(module_name(path), rewrite(path, text).encode()))
    return tuple(modules)
