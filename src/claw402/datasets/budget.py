"""One process's budget for datasets: DuckDB memory, threads, temp space, open datasets, pages.

Why a budget: a gateway worker holds one engine for every tenant, so what it may hold must not
grow with the data or with the tenants touched. DuckDB's buffer pool keeps blocks it read up
to `memory_limit` (by default 80% of the machine: a 10M-row dataset kept ~1.1 GB), spills
sorts to `temp_directory` past it, `max_open` bounds the datasets attached at once (the
small ones live in memory while attached) and `cache_bytes` the answers kept (pages.py).
`402claw serve` passes its options to granian's workers through the environment, so
`from_env` is where a worker reads them.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_MEMORY = "CLAW402_MEMORY_LIMIT"
ENV_OPEN = "CLAW402_OPEN_DATASETS"
ENV_THREADS = "CLAW402_ENGINE_THREADS"
ENV_CACHE = "CLAW402_PAGE_CACHE"
ENV_CACHE_ROWS = "CLAW402_PAGE_CACHE_ROWS"
ENV_TEMP = "CLAW402_ENGINE_TEMP"

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
MIN_MEMORY = 64 * 2**20  # below this DuckDB cannot run a sort of one page's worth


def parse_size(text: str) -> int:
    """Bytes in `256MB`, `1GB`, `512MiB` (decimal and binary units, as DuckDB reads them)."""
    match = _SIZE_RE.match(str(text))
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ValueError(f"invalid size {text!r}: write it like 256MB, 1GB or 512MiB")
    return int(float(match.group(1)) * _UNITS[unit])


def _positive(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


@dataclass(frozen=True)
class Budget:
    """What one engine may hold; `Engine(**budget.engine_options())`."""

    memory_limit: str = "192MB"
    threads: int = 2
    max_open: int = 64
    cache_bytes: str = "32MB"  # cached answers (pages.py): one 20-row page for each of 10,000
    cache_rows: int | None = None  # an extra bound in rows; 0: no cache
    temp_directory: str | None = field(default=None)

    def __post_init__(self) -> None:
        if parse_size(self.memory_limit) < MIN_MEMORY:
            raise ValueError(f"memory limit {self.memory_limit!r} is below 64MB")
        for name in ("threads", "max_open"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer")
        parse_size(self.cache_bytes)
        if self.cache_rows is not None and self.cache_rows < 0:
            raise ValueError("cache_rows must not be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Budget:
        """The budget the environment sets; unset variables keep the defaults."""
        given: dict[str, object] = {}
        if memory := environ.get(ENV_MEMORY):
            parse_size(memory)
            given["memory_limit"] = memory
        if value := environ.get(ENV_OPEN):
            given["max_open"] = _positive(value, ENV_OPEN)
        if value := environ.get(ENV_THREADS):
            given["threads"] = _positive(value, ENV_THREADS)
        if value := environ.get(ENV_CACHE):
            parse_size(value)
            given["cache_bytes"] = value
        if value := environ.get(ENV_CACHE_ROWS):
            given["cache_rows"] = 0 if value.strip() == "0" else _positive(value, ENV_CACHE_ROWS)
        if value := environ.get(ENV_TEMP):
            given["temp_directory"] = value
        return cls(**given)  # type: ignore[arg-type]

    def engine_options(self) -> dict[str, object]:
        return {
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "max_open": self.max_open,
            "cache_bytes": self.cache_bytes,
            "cache_rows": self.cache_rows,
            "temp_directory": self.temp_directory,
        }


def private_temp_directory() -> str:
    """A spill folder of one engine's own (removed when it closes), made by DuckDB only if it
    spills: DuckDB's default for an in-memory database is `.tmp` in the working directory,
    shared by every worker started there."""
    return os.path.join(tempfile.gettempdir(), f"claw402-duckdb-{os.getpid()}-{uuid.uuid4().hex}")
