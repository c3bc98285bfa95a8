"""Every executed upload, in `<home>/cloudflare-dispatcher-history.json`, and what it carried.

An entry records the script, where it went, the API call, the outcome, the upload metadata
(secret bindings by name only: values never reach this file) and each module's name, content
type, size and sha256. Module contents are kept once each, by hash, in
`<home>/cloudflare-uploads/`, so any succeeded upload can be re-uploaded as it was (a rollback).

Writes are atomic (temp file + rename) under an exclusive lock, so concurrent deploys append
without losing entries and a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from claw402.cloudflare.bundle import Module, WorkerBundle
from claw402.cloudflare.files import dump_json, write_atomic

HISTORY_FILE = "cloudflare-dispatcher-history.json"
BLOBS_DIR = "cloudflare-uploads"
FORMAT_VERSION = 1


class HistoryError(LookupError):
    """No such entry, or nothing to roll back to; the message says which."""


def new_id(kind: str) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{kind}-{secrets.token_hex(3)}"


def redact(metadata: dict[str, Any]) -> dict[str, Any]:
    """Upload metadata as safe to store: secret bindings keep their name, lose their value."""
    bindings = [
        {"type": b["type"], "name": b["name"]} if b.get("type", "").startswith("secret_") else b
        for b in metadata.get("bindings", [])
    ]
    return {**metadata, "bindings": bindings}


class History:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / HISTORY_FILE
        self.blobs = home / BLOBS_DIR

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        data = orjson.loads(self.path.read_bytes())
        return list(data.get("deploys", []))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / f".{HISTORY_FILE}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def store_modules(self, bundle: WorkerBundle) -> None:
        for module in bundle.modules:
            path = self.blobs / module.sha256
            if not path.exists():
                write_atomic(path, module.content)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._locked():
            deploys = self.entries()
            deploys.append(entry)
            write_atomic(self.path, dump_json({"version": FORMAT_VERSION, "deploys": deploys}))
        return entry

    def get(self, entry_id: str) -> dict[str, Any]:
        for entry in self.entries():
            if entry["id"] == entry_id:
                return entry
        raise HistoryError(f"no deploy {entry_id!r} in {self.path}")

    def bundle(self, entry: dict[str, Any]) -> WorkerBundle:
        """The upload an entry recorded, rebuilt from the stored module copies."""
        modules = []
        for described in entry["bundle"]["modules"]:
            path = self.blobs / described["sha256"]
            if not path.exists():
                raise HistoryError(
                    f"deploy {entry['id']}: stored copy of {described['name']} "
                    f"is missing from {self.blobs}"
                )
            modules.append(Module(described["name"], path.read_bytes()))
        metadata = {k: v for k, v in entry["metadata"].items() if k != "keep_bindings"}
        return WorkerBundle(entry["scriptName"], tuple(modules), metadata)

    def succeeded(
        self, kind: str, script_name: str, account_id: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries()
            if e["kind"] == kind
            and e["scriptName"] == script_name
            and e["accountId"] == account_id
            and e["status"] == "succeeded"
            and (namespace is None or e.get("dispatchNamespace") == namespace)
        ]

    def rollback_target(
        self,
        kind: str,
        script_name: str,
        account_id: str,
        to: str | None = None,
        *,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """`to`, or else the previous good upload: the latest succeeded one before the live
        one's place in the history whose content differs. A rollback's place is the place of
        the upload it restored, so rolling back again keeps moving back (A <- B <- C: C, then
        B, then A), never between the last two."""
        done = self.succeeded(kind, script_name, account_id, namespace)
        if to is not None:
            entry = self.get(to)
            if entry not in done:
                raise HistoryError(
                    f"deploy {to!r} is not a succeeded upload of {kind} {script_name!r} on "
                    f"account {account_id}"
                )
            return entry
        if not done:
            raise HistoryError(f"no executed deploy of {script_name!r} on account {account_id}")
        live = done[-1]
        index = {e["id"]: i for i, e in enumerate(done)}
        place = len(done) - 1
        seen: set[str] = set()
        restored = live.get("rollbackOf")
        while restored in index and restored not in seen:  # a rollback of a rollback: follow
            seen.add(restored)
            place = index[restored]
            restored = done[place].get("rollbackOf")
        for entry in reversed(done[:place]):
            if entry["bundle"]["sha256"] != live["bundle"]["sha256"]:
                return entry
        raise HistoryError(
            f"{script_name!r} has no earlier upload than {done[place]['id']} that "
            f"differs from the live one ({live['id']}): nothing to roll back to"
        )
