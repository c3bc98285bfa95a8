"""Where 402claw keeps its state, resolved the same way by every command and the gateway.

Order: an explicit `--home`, else `CLAW402_HOME`, else `./.402claw`. The registry database is a
SQLite file in the home unless `CLAW402_DATABASE_URL` names another (PostgreSQL).
`CLAW402_PUBLIC_URL` is the gateway's address as callers see it (402 resource URLs, OpenAPI
servers); `CLAW402_RESERVED_HOSTS` (comma-separated) and the public URL's host are names no
tenant may claim as a custom host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    public_url: str | None = None  # as given: checked where it is used
    reserved_hosts: tuple[str, ...] = ()

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    raw = home if home is not None else os.environ.get("CLAW402_HOME") or ".402claw"
    return Path(raw).expanduser().resolve()


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    path = resolve_home(home)
    url = os.environ.get("CLAW402_DATABASE_URL") or f"sqlite:///{path / 'registry.sqlite3'}"
    reserved = os.environ.get("CLAW402_RESERVED_HOSTS") or ""
    return Settings(
        home=path,
        database_url=url,
        public_url=os.environ.get("CLAW402_PUBLIC_URL") or None,
        reserved_hosts=tuple(h.strip() for h in reserved.split(",") if h.strip()),
    )
