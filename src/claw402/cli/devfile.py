"""What a running `402claw dev` tells the other commands that share its home folder.

While it runs, `402claw dev` keeps `dev.json` (chain, token, treasury, facilitator and gateway
URLs, its process id) and `dev-treasury.key` (the treasury's private key, mode 0600) in the
home, and removes both when it stops. `reconcile`, `payouts run` and `call` read them for
whatever their flags and environment do not say, so a second terminal needs no chain flags.
Files left by a stack that was killed (its process is gone) are ignored and replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from claw402.config import resolve_home

SETTINGS_FILE = "dev.json"
KEY_FILE = "dev-treasury.key"


@dataclass(frozen=True)
class DevSettings:
    rpc_url: str
    network: str
    token: str
    treasury: str
    facilitator_url: str
    gateway_url: str
    pid: int

    def treasury_key(self, home: str | os.PathLike[str] | None) -> str | None:
        try:
            return (resolve_home(home) / KEY_FILE).read_text().strip() or None
        except OSError:
            return None


def running(home: str | os.PathLike[str] | None) -> DevSettings | None:
    """The settings of the `402claw dev` running with this home, if one is."""
    try:
        raw = json.loads((resolve_home(home) / SETTINGS_FILE).read_text())
        found = DevSettings(**{k: raw[k] for k in DevSettings.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if _alive(found.pid) else None


@contextlib.contextmanager
def published(home: Path, settings: DevSettings, treasury_key: str) -> Iterator[None]:
    """Publish `settings` and the treasury key in `home` until the block ends (the caller
    checked that no other live `402claw dev` publishes there)."""
    home.mkdir(parents=True, exist_ok=True)
    key_path, settings_path = home / KEY_FILE, home / SETTINGS_FILE
    try:
        _write_private(key_path, treasury_key + "\n")
        _write_private(settings_path, json.dumps(asdict(settings), indent=2) + "\n")
        yield
    finally:
        for path in (settings_path, key_path):
            path.unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    """Write atomically, readable by this user only from the first byte on."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(temp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
