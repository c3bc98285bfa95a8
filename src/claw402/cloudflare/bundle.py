"""A Worker as uploaded: its modules and its upload metadata, on disk or in memory.

One folder per Worker: every module file plus `metadata.json` (what the Cloudflare multipart
upload sends as its `metadata` part). A module's content type follows from its file name, so a
folder alone is enough to upload, run under workerd, or re-upload on a rollback.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from claw402.cloudflare.files import dump_json, write_atomic

COMPATIBILITY_DATE = "2026-11-01"  # supported by the pinned workerd (1.20261117.1) and production
MAX_TAGS = 8  # Cloudflare's limit on tags per script
METADATA_FILE = "metadata.json"

# Modules are ES modules or text blobs (imported as strings); both are upload content types the
# Cloudflare API accepts and workerd can load.
JS_MODULE = "application/javascript+module"
TEXT_MODULE = "text/plain"


def content_type_for(name: str) -> str:
    return JS_MODULE if name.endswith((".js", ".mjs")) else TEXT_MODULE


@dataclass(frozen=True)
class Module:
    name: str
    content: bytes

    @property
    def content_type(self) -> str:
        return content_type_for(self.name)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class WorkerBundle:
    """What one upload carries. `metadata` never holds a secret's value (secrets are merged in
    at upload time from the environment, and only their names are kept)."""

    script_name: str
    modules: tuple[Module, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        main = self.metadata.get("main_module")
        if main not in {m.name for m in self.modules}:
            raise ValueError(f"{self.script_name}: main_module {main!r} is not among the modules")
        if len(self.metadata.get("tags", [])) > MAX_TAGS:
            raise ValueError(f"{self.script_name}: at most {MAX_TAGS} tags per script")

    @property
    def main_module(self) -> str:
        return str(self.metadata["main_module"])

    def module(self, name: str) -> Module:
        for module in self.modules:
            if module.name == name:
                return module
        raise KeyError(name)

    @property
    def digest(self) -> str:
        """One hash over the modules and the metadata: equal digests, identical uploads."""
        parts = [(m.name, m.sha256) for m in self.modules]
        payload = orjson.dumps([parts, self.metadata], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()

    @property
    def content_digest(self) -> str:
        """The digest without the Durable Object `migrations` (sent only until applied), so
        a script's first upload and its later ones compare equal when nothing else changed."""
        metadata = {k: v for k, v in self.metadata.items() if k != "migrations"}
        return WorkerBundle(self.script_name, self.modules, metadata).digest

    @property
    def raw_size(self) -> int:
        return sum(len(m.content) for m in self.modules)

    @property
    def gzip_size(self) -> int:
        """Compressed upload size, module by module (what the platform's limit is checked on)."""
        return sum(len(gzip.compress(m.content, compresslevel=6, mtime=0)) for m in self.modules)

    def describe(self) -> dict[str, Any]:
        return {
            "scriptName": self.script_name,
            "mainModule": self.main_module,
            "modules": [
                {
                    "name": m.name,
                    "contentType": m.content_type,
                    "bytes": len(m.content),
                    "sha256": m.sha256,
                }
                for m in self.modules
            ],
            "bytes": self.raw_size,
            "sha256": self.digest,
        }

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for module in self.modules:
            write_atomic(folder / module.name, module.content)
        write_atomic(folder / METADATA_FILE, dump_json(self.metadata))
        return folder


def read_bundle(folder: Path, script_name: str | None = None) -> WorkerBundle:
    """A bundle back from its folder: `metadata.json` plus every module file beside it."""
    metadata = orjson.loads((folder / METADATA_FILE).read_bytes())
    modules = tuple(
        Module(path.name, path.read_bytes())
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != METADATA_FILE and not path.name.startswith(".")
    )
    main = metadata.get("main_module")
    ordered = tuple(sorted(modules, key=lambda m: m.name != main))  # main module first
    return WorkerBundle(script_name or folder.name, ordered, metadata)
