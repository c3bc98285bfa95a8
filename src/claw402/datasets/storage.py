"""How a dataset version is stored on disk, and how the engine attaches each layout.

Two layouts, chosen at ingest by the number of rows (bench/bench_tenants.py):
- `data.duckdb` (see ingest.py): attached read-only; the buffer pool reads only the blocks a
  query needs. DuckDB's smallest file is ~780 KB (256 KB blocks), whatever the rows: 10,000
  tenants of 20 rows took 7.5 GB.
- `data.parquet`, for at most `COMPACT_ROWS` rows: a few KB. Attached as an in-memory database
  loaded from it in source order, so `rowid` is the source row number exactly as in a DuckDB
  file and the same SQL gives the same answers. No search files: scanning a few thousand rows
  costs DuckDB less than opening them.

Versions keep the layout they were written with; the path in the registry says which.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

DUCKDB_FILE = "data.duckdb"
COMPACT_FILE = "data.parquet"
COMPACT_ROWS = 10_000
TABLE = "data"


def is_compact(path: str | Path) -> bool:
    return str(path).endswith(".parquet")


def attach(con: duckdb.DuckDBPyConnection, path: str, alias: str) -> None:
    """Attach the version at `path` as database `alias` (its table: `alias.main.data`)."""
    literal = path.replace("'", "''")
    try:
        if not is_compact(path):
            con.execute(f"ATTACH '{literal}' AS {alias} (READ_ONLY)")
            return
        con.execute(f"ATTACH ':memory:' AS {alias}")
        try:
            con.execute(
                f"CREATE TABLE {alias}.main.{TABLE} AS SELECT * FROM read_parquet('{literal}')"
            )
        except BaseException:
            con.execute(f"DETACH {alias}")
            raise
    except duckdb.IOException as exc:
        raise FileNotFoundError(f"cannot open dataset file {path}: {exc}") from None


def write_compact(con: duckdb.DuckDBPyConnection, table: str, target: Path) -> None:
    """`table` as one Parquet file, rows in rowid order (the order they are read back in)."""
    literal = str(target).replace("'", "''")
    con.execute(f"COPY (SELECT * FROM {table} ORDER BY rowid) TO '{literal}' (FORMAT parquet)")
