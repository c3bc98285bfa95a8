"""Ingest: a CSV, JSON array, NDJSON or Parquet file -> one immutable file per version.

A version of at most `storage.COMPACT_ROWS` rows is written as `data.parquet` (a few KB, no
search files: storage.py); a larger one as below.

Layout of `<dest_dir>/data.duckdb` (chosen by measurement; see bench/bench_engine.py):
table `data` holds the columns under their normalised names and logical types, in source
order. The row-order column is DuckDB's own `rowid`: written in one order-preserving
CREATE TABLE AS, it is the dense 0-based source row number (keyset pages, a
first page that reads one row group), and unlike a materialised `row_number()` column it costs
no ingest time (0.6 s of 1.8 s for 1M rows). Strings are stored uncompressed: pages and
substring scans measured about twice as fast as with FSST or dictionary compression. A key
column gets a unique ART index (fast `record(key)`). When there are string columns,
`search-<n>.txt` and `search.idx` beside it hold their text for substring search
(`search.py`); they replace a lowercased `_text` column, which cost more to write (0.5 s for
1M rows) than they do, and DuckDB scanned it 4-8x slower.

Reading and typing the source is `sources.py`; its messages are `ingest_errors.py`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from claw402.datasets import search
from claw402.datasets.ingest_errors import IngestError, first_line, is_late_type_error, source_error
from claw402.datasets.schema import KEY_TYPES, Column, sql_ident
from claw402.datasets.sources import (
    FORMATS,
    Planned,
    Reader,
    SampleTooSmall,
    csv_reader,
    detect_format,
    open_reader,
    plan,
    sql_text,
)
from claw402.datasets.storage import COMPACT_FILE, COMPACT_ROWS, DUCKDB_FILE, write_compact

__all__ = ["DATA_FILE", "FORMATS", "IngestError", "IngestResult", "detect_format", "ingest"]

DATA_FILE = DUCKDB_FILE
_DISABLED_COMPRESSION = "fsst,dictionary,dict_fsst"
# DuckDB's own limit is 80% of the machine: a 10M-row ingest peaked at 1.4 GB RSS. Under this
# it spills to the scratch folder (bench/bench_ingest.py).
INGEST_MEMORY = "600MB"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestResult:
    path: Path
    format: str  # "csv" | "json" | "ndjson" | "parquet"
    rows: int
    bytes: int
    columns: list[Column]
    key: str | None


def ingest(
    source: Path,
    dest_dir: Path,
    *,
    fmt: str | None = None,
    key: str | None = None,
    allow_empty: bool = False,
    progress: Progress | None = None,
    compact_rows: int = COMPACT_ROWS,
) -> IngestResult:
    """Convert `source` into `dest_dir/data.duckdb`, or `data.parquet` when it has at most
    `compact_rows` rows; on failure leave nothing in dest_dir.

    `fmt` says what the file is when its extension does not; a file with no rows is refused
    unless `allow_empty` (an API over nothing is a mistake more often than a wish).
    """
    source, dest_dir = Path(source), Path(dest_dir)
    try:
        size = source.stat().st_size
        fmt = detect_format(source, fmt)
    except OSError as exc:
        raise IngestError(f"cannot read {source.name}: {exc.strerror}") from None
    created_dir = not dest_dir.exists()
    dest_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    temp = dest_dir / f".ingest-{token}.duckdb"
    scratch = dest_dir / f".ingest-{token}.tmp"
    final = dest_dir / DATA_FILE
    compact = dest_dir / f".ingest-{token}.parquet"
    try:
        with _connection(scratch) as con:
            con.execute(f"ATTACH '{sql_text(temp)}' AS out")
            reader = open_reader(con, source, fmt, scratch)
            if progress:
                progress(0, size)
            try:
                planned = plan(con, reader)
                _create_table(con, reader, planned, size, progress)
            except SampleTooSmall:
                # The sniffer typed a sample; a later row disagrees. Type the whole file once.
                reader = (
                    csv_reader(con, reader.path, reader.name, whole_file=True)
                    if reader.format == "csv"
                    else reader.full_sample()
                )
                con.execute("DROP TABLE IF EXISTS out.data")
                planned = plan(con, reader)
                _create_table(con, reader, planned, size, progress)
            columns = [p.column for p in planned]
            key = _resolve_key(key, planned)
            if key is not None:
                _index_key(con, key)
            rows = con.execute("SELECT count(*) FROM out.data").fetchone()[0]  # type: ignore[index]
            if rows == 0 and not allow_empty:
                raise IngestError(
                    f"{source.name} has no rows ({len(columns)} columns): pass --allow-empty "
                    "to deploy an empty dataset"
                )
            written: list[Path] = []
            if rows <= compact_rows:
                write_compact(con, "out.data", compact)
                final = dest_dir / COMPACT_FILE
            else:
                strings = [c.name for c in columns if c.type == "string"]
                written = search.write(con, "out.data", strings, dest_dir, f".ingest-{token}.")
                con.execute("CHECKPOINT out")
            con.execute("DETACH out")
        for path in search.files(dest_dir):  # an earlier ingest's, if any: not of this data
            path.unlink()
        for path in written:  # the index last: it names the text files
            os.replace(path, dest_dir / path.name.removeprefix(f".ingest-{token}."))
        os.replace(compact if final.name == COMPACT_FILE else temp, final)
        for other in (DUCKDB_FILE, COMPACT_FILE):  # an earlier ingest's other layout, if any
            if other != final.name:
                (dest_dir / other).unlink(missing_ok=True)
    except duckdb.Error as exc:  # not the source's fault (disk full, ...): still an IngestError
        raise IngestError(f"{source.name}: {first_line(str(exc))}") from exc
    finally:
        for leftover in (temp, Path(f"{temp}.wal"), compact, *dest_dir.glob(f".ingest-{token}.*")):
            if leftover != scratch:
                leftover.unlink(missing_ok=True)
        if not final.exists():  # search files without their data file are of no use
            for path in search.files(dest_dir):
                path.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
        if created_dir and not final.exists():
            with contextlib.suppress(OSError):
                dest_dir.rmdir()
    if progress:
        progress(size, size)
    return IngestResult(path=final, format=fmt, rows=rows, bytes=size, columns=columns, key=key)


@contextlib.contextmanager
def _connection(scratch: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET temp_directory='{sql_text(scratch)}'")
        con.execute(f"SET memory_limit='{INGEST_MEMORY}'")
        con.execute(f"SET disabled_compression_methods='{_DISABLED_COMPRESSION}'")
        con.execute("SET preserve_insertion_order=true")
        con.execute("SET enable_progress_bar=true")
        con.execute("SET enable_progress_bar_print=false")
        yield con
    finally:
        con.close()


# ---- writing -----------------------------------------------------------------------------


def _create_table(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    planned: list[Planned],
    size: int,
    progress: Progress | None,
) -> None:
    converted = ", ".join(f"{p.sql} AS {sql_ident(p.column.name)}" for p in planned)
    # Insertion order is preserved, so DuckDB's rowid is the 0-based source row number.
    sql = f"CREATE TABLE out.data AS SELECT {converted} FROM {reader.sql}"
    done = threading.Event()

    def poll() -> None:
        assert progress is not None
        while not done.wait(0.1):
            percent = con.query_progress()
            if percent >= 0:
                progress(min(size, int(size * percent / 100)), size)

    poller = threading.Thread(target=poll, daemon=True) if progress else None
    if poller:
        poller.start()
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        if is_late_type_error(str(exc)) and not reader.whole_file:
            raise SampleTooSmall from None
        raise source_error(exc, reader) from None
    finally:
        done.set()
        if poller:
            poller.join()


def _resolve_key(key: str | None, planned: list[Planned]) -> str | None:
    """The stored name of the key column; the caller may give it as written in the source."""
    if key is None:
        return None
    match = next((p for p in planned if p.column.name == key), None) or next(
        (p for p in planned if p.source_name.strip() == key.strip()), None
    )
    if match is None:
        names = ", ".join(p.column.name for p in planned)
        raise IngestError(f"key column {key!r} does not exist; columns are {names}")
    if match.column.type not in KEY_TYPES:
        raise IngestError(
            f"key column {match.column.name!r} is {match.column.type}; "
            "a key must be an integer, string or date column"
        )
    return match.column.name


def _index_key(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """Reject NULL or repeated keys, naming the first offending row; index for lookups."""
    col = sql_ident(key)
    null_row = con.execute(f"SELECT min(rowid) FROM out.data WHERE {col} IS NULL").fetchone()
    if null_row and null_row[0] is not None:
        raise IngestError(f"key column {key!r} is empty in row {null_row[0] + 1}")
    try:
        con.execute(f"CREATE UNIQUE INDEX data_key ON out.data ({col})")
    except duckdb.Error:
        repeated = con.execute(
            f"SELECT CAST({col} AS VARCHAR), list(rowid + 1 ORDER BY rowid)[1:2] "
            f"FROM out.data GROUP BY {col} HAVING count(*) > 1 ORDER BY min(rowid) LIMIT 1"
        ).fetchone()
        if repeated is None:
            raise
        value, rows = repeated
        raise IngestError(
            f"key column {key!r} is not unique: {value!r} appears in rows {rows[0]} and {rows[1]}"
        ) from None
