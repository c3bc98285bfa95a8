"""Where 402claw keeps its state, resolved the same way by every command and the gateway.

Order: an explicit `--home`, else `CLAW402_HOME`, else `./.402claw`. The registry database is a
SQLite file in the home unless `CLAW402_DATABASE_URL` names another (PostgreSQL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    raw = home if home is not None else os.environ.get("CLAW402_HOME") or ".402claw"
    return Path(raw).expanduser().resolve()


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    path = resolve_home(home)
    url = os.environ.get("CLAW402_DATABASE_URL") or f"sqlite:///{path / 'registry.sqlite3'}"
    return Settings(home=path, database_url=url)
