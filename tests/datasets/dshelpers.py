"""Helpers for the datasets tests: files with exact types, parsed queries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from claw402.datasets.ingest import IngestResult
from claw402.datasets.query import Query, parse_query

DUCK_TYPES = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def write_parquet(path: Path, columns: Sequence[tuple[str, str]], rows: Sequence[tuple]) -> Path:
    """A Parquet file with exactly these logical types (CSV would make DuckDB guess them)."""
    con = duckdb.connect()
    try:
        defs = ", ".join(f'"{name}" {DUCK_TYPES[kind]}' for name, kind in columns)
        con.execute(f"CREATE TABLE t ({defs})")
        if rows:
            con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(columns))})", rows)
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    finally:
        con.close()
    return path


def query(
    result: IngestResult, *params: tuple[str, str], max_limit: int = 1000, version: str = "v1"
) -> Query:
    return parse_query(list(params), result.columns, max_limit=max_limit, version=version)
