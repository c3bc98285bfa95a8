"""Ingest: a CSV, JSON array, NDJSON or Parquet file -> one immutable DuckDB file per version.

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

Decisions: the first CSV row is the header unless DuckDB's sniffer says otherwise (then columns
are `column_1`...); names follow `schema.normalise_names`; a CSV that is not UTF-8 is read as
cp1252 (latin-1 when cp1252 cannot decode it); non-finite numbers and dates outside years
1-9999 become NULL; nested values become JSON text, BLOBs base64, 128-bit or unsigned 64-bit
integers out of the signed 64-bit range text; DECIMAL becomes a double; timestamps with a zone
become naive UTC.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from claw402.datasets import search
from claw402.datasets.schema import (
    KEY_TYPES,
    Column,
    LogicalType,
    normalise_names,
    sql_ident,
)

DATA_FILE = "data.duckdb"
_DISABLED_COMPRESSION = "fsst,dictionary,dict_fsst"
_DELIMITERS = (",", ";", "\t", "|")
_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_WIDE_INT_TYPES = {"UBIGINT", "HUGEINT", "UHUGEINT", "BIGNUM", "VARINT"}
_TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME"}
_NESTED_RE = re.compile(r"^(STRUCT|MAP|UNION)\(|\]$|^JSON$")

Progress = Callable[[int, int], None]

FORMATS = ("csv", "json", "ndjson", "parquet")
# The extensions that name a format; any other file needs its format said (--format): a
# `notes.txt` of prose would otherwise become a one-column CSV with no rows.
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class IngestError(ValueError):
    """The file cannot become a dataset; the message names the line or field and says why."""


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
) -> IngestResult:
    """Convert `source` into `dest_dir/data.duckdb`; on failure leave nothing in dest_dir.

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
    try:
        with _connection(scratch) as con:
            con.execute(f"ATTACH '{_sql_text(temp)}' AS out")
            reader = _reader(con, source, fmt, scratch)
            if progress:
                progress(0, size)
            try:
                planned = _plan(con, reader)
                _create_table(con, reader, planned, size, progress)
            except _SampleTooSmall:
                # The sniffer typed a sample; a later row disagrees. Type the whole file once.
                reader = (
                    _csv_reader(con, reader.path, reader.name, whole_file=True)
                    if reader.format == "csv" else reader.full_sample()
                )
                con.execute("DROP TABLE IF EXISTS out.data")
                planned = _plan(con, reader)
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
            strings = [c.name for c in columns if c.type == "string"]
            written = search.write(con, "out.data", strings, dest_dir, f".ingest-{token}.")
            con.execute("CHECKPOINT out")
            con.execute("DETACH out")
        for path in search.files(dest_dir):  # an earlier ingest's, if any: not of this data
            path.unlink()
        for path in written:  # the index last: it names the text files
            os.replace(path, dest_dir / path.name.removeprefix(f".ingest-{token}."))
        os.replace(temp, final)
    except duckdb.Error as exc:  # not the source's fault (disk full, ...): still an IngestError
        raise IngestError(f"{source.name}: {_first_line(str(exc))}") from exc
    finally:
        for leftover in (temp, Path(f"{temp}.wal"), *dest_dir.glob(f".ingest-{token}.*")):
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


def detect_format(source: Path, declared: str | None = None) -> str:
    """The format `declared`, else the one the extension names; the first bytes refine it
    (Parquet's magic, NDJSON in a .json file). Raises `IngestError` for any other file."""
    if declared is not None and declared not in FORMATS:
        raise IngestError(f"unknown format {declared!r}: choose one of {', '.join(FORMATS)}")
    with open(source, "rb") as handle:
        head = handle.read(4096)
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise IngestError(f"{source.name} is empty")
    suffix = source.suffix.lower()
    fmt = declared or SUFFIXES.get(suffix)
    if fmt is None:
        named = f"the extension {suffix!r}" if suffix else "a name with no extension"
        raise IngestError(
            f"{source.name}: {named} names none of the formats (csv, json, ndjson, parquet: "
            f"{' '.join(SUFFIXES)}): say what it is with --format {'|'.join(FORMATS)}"
        )
    if head.startswith(b"PAR1"):
        return "parquet"
    if fmt == "parquet":
        raise IngestError(f"{source.name} is not a valid Parquet file (no PAR1 header)")
    first = head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if fmt == "json" and first == b"{":
        return "ndjson"  # one object per line, in a .json file
    return fmt


@contextlib.contextmanager
def _connection(scratch: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET temp_directory='{_sql_text(scratch)}'")
        con.execute(f"SET disabled_compression_methods='{_DISABLED_COMPRESSION}'")
        con.execute("SET preserve_insertion_order=true")
        con.execute("SET enable_progress_bar=true")
        con.execute("SET enable_progress_bar_print=false")
        yield con
    finally:
        con.close()


# ---- reading the source ------------------------------------------------------------------

class _SampleTooSmall(Exception):
    pass


@dataclass(frozen=True)
class _Reader:
    """A DuckDB table function over the source, with the dialect fixed for CSV."""

    path: Path
    name: str  # the source's file name, for messages
    format: str
    options: str = ""  # CSV only: dialect, header and column types from one sniff
    delimiter: str = ","
    header: bool = True
    whole_file: bool = False

    @property
    def sql(self) -> str:
        sample = ", sample_size=-1" if self.whole_file else ""
        path = _sql_text(self.path)
        if self.format == "csv":
            return f"read_csv('{path}', {self.options})"  # typed by the sniff behind options
        if self.format == "parquet":
            return f"read_parquet('{path}')"
        layout = "array" if self.format == "json" else "newline_delimited"
        return f"read_json('{path}', format='{layout}', records=true{sample})"

    def full_sample(self) -> _Reader:
        return _Reader(**{**self.__dict__, "whole_file": True})


@dataclass(frozen=True)
class _Planned:
    """A column as DuckDB reads it, the SQL converting it, and what it becomes."""

    source_name: str
    duck_name: str
    sql: str
    column: Column


def _reader(con: duckdb.DuckDBPyConnection, source: Path, fmt: str, scratch: Path) -> _Reader:
    if fmt != "csv":
        return _Reader(source, source.name, fmt)
    head = _read_head(source)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _csv_reader(con, _transcode(source, scratch, "utf-16"), source.name)
    if not _is_utf8(head):
        return _csv_reader(con, _transcode(source, scratch, None), source.name)
    try:
        return _csv_reader(con, source, source.name)
    except _NotUtf8:
        return _csv_reader(con, _transcode(source, scratch, None), source.name)


class _NotUtf8(Exception):
    pass


def _csv_reader(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, *, whole_file: bool = False
) -> _Reader:
    """read_csv with everything fixed by one sniff: DuckDB's own guesses can merge or drop a
    bad file's rows, and would treat lines starting with `#` as comments (silently lost)."""
    delimiter = _sniff_delimiter(_read_head(path).decode("utf-8-sig", errors="replace"))
    dialect = (
        f"delim='{_sql_text(delimiter)}', quote='\"', escape='\"', skip=0, strict_mode=true, "
        "comment=''"
    )
    sample = ", sample_size=-1" if whole_file else ""
    try:
        sniffed = con.execute(
            "SELECT HasHeader, Columns, DateFormat, TimestampFormat "
            f"FROM sniff_csv('{_sql_text(path)}', {dialect}{sample})"
        ).fetchone()
    except duckdb.Error as exc:
        if "unicode" in str(exc).lower():
            raise _NotUtf8 from None
        raise _csv_diagnosis(path, name, delimiter, exc) from None
    assert sniffed is not None
    header, columns, date_format, timestamp_format = sniffed
    types = ", ".join(f"'{_sql_text(c['name'])}': '{c['type']}'" for c in columns)
    options = (
        f"{dialect}, auto_detect=false, header={str(bool(header)).lower()}, "
        f"columns={{{types}}}, null_padding=false"
    )
    for option, value in (("dateformat", date_format), ("timestampformat", timestamp_format)):
        if value and value != "(empty)":
            options += f", {option}='{_sql_text(value)}'"
    return _Reader(path, name, "csv", options, delimiter, bool(header), whole_file)


def _plan(con: duckdb.DuckDBPyConnection, reader: _Reader) -> list[_Planned]:
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader.sql}").fetchall()
    except duckdb.Error as exc:
        raise _source_error(exc, reader) from None
    if not described:
        raise IngestError(f"{reader.name} has no columns")
    source_names = [row[0] for row in described]
    if reader.format == "csv":
        source_names = _csv_header(reader) or source_names
        if not reader.header:
            source_names = [""] * len(described)  # become column_1, column_2, ...
    names = normalise_names(source_names)
    planned = []
    for (duck_name, duck_type, *_), source_name, name in zip(
        described, source_names, names, strict=True
    ):
        sql, kind = _conversion(con, reader, duck_name, duck_type)
        planned.append(_Planned(source_name, duck_name, sql, Column(name, kind)))
    return planned


def _csv_header(reader: _Reader) -> list[str] | None:
    """The header as written: DuckDB trims and renames duplicates its own way."""
    if not reader.header:
        return None
    text = _read_head(reader.path).decode("utf-8-sig", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text), delimiter=reader.delimiter))
    except (StopIteration, csv.Error):
        return None


def _read_head(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _is_utf8(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the end of the sample
    return True


def _sniff_delimiter(text: str) -> str:
    """The candidate that splits the header line into the most fields (ties: comma)."""
    line = text.splitlines()[0] if text else ""
    best, best_count = ",", 1
    for candidate in _DELIMITERS:
        try:
            fields = next(csv.reader([line], delimiter=candidate), [])
        except csv.Error:
            continue
        if len(fields) > best_count:
            best, best_count = candidate, len(fields)
    return best


def _transcode(source: Path, scratch: Path, encoding: str | None) -> Path:
    """A UTF-8 copy of a UTF-16, cp1252 or latin-1 file (encoding None: cp1252, else latin-1)."""
    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / "utf8.csv"
    for candidate in [encoding] if encoding else ["cp1252", "latin-1"]:
        try:
            with (
                open(source, encoding=candidate, newline="") as src,
                open(target, "w", encoding="utf-8", newline="") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
            return target
        except UnicodeError:
            continue
    raise IngestError(f"{source.name}: cannot decode the text as UTF-16")


def _conversion(
    con: duckdb.DuckDBPyConnection, reader: _Reader, duck_name: str, duck_type: str
) -> tuple[str, LogicalType]:
    """SQL turning a source column into its stored form, and the logical type it gets."""
    col = sql_ident(duck_name)
    base = duck_type.split("(")[0]
    if base in _INT_TYPES:
        return f"CAST({col} AS BIGINT)", "integer"
    if base in _WIDE_INT_TYPES:
        fits = con.execute(
            f"SELECT coalesce(min({col}) >= -9223372036854775808 AND "
            f"max({col}) <= 9223372036854775807, true) FROM {reader.sql}"
        ).fetchone()
        if fits and fits[0]:
            return f"CAST({col} AS BIGINT)", "integer"
        return f"CAST({col} AS VARCHAR)", "string"
    if base in ("FLOAT", "DOUBLE", "REAL"):
        return f"CASE WHEN isfinite({col}) THEN CAST({col} AS DOUBLE) END", "number"
    if base in ("DECIMAL", "NUMERIC"):
        return f"CAST({col} AS DOUBLE)", "number"
    if base == "BOOLEAN":
        return col, "boolean"
    if base == "DATE":
        guard = f"isfinite({col}) AND year({col}) BETWEEN 1 AND 9999"
        return f"CASE WHEN {guard} THEN {col} END", "date"
    if base in _TIMESTAMP_TYPES or duck_type == "TIMESTAMP WITH TIME ZONE":
        value = (
            f"timezone('UTC', {col})" if duck_type == "TIMESTAMP WITH TIME ZONE"
            else f"CAST({col} AS TIMESTAMP)"
        )
        guard = f"isfinite({col}) AND year({value}) BETWEEN 1 AND 9999"
        return f"CASE WHEN {guard} THEN {value} END", "timestamp"
    if base == "VARCHAR":
        return col, "string"
    if base == "BLOB":
        return f"to_base64({col})", "string"
    if _NESTED_RE.search(duck_type):
        return f"CAST(to_json({col}) AS VARCHAR)", "string"
    return f"CAST({col} AS VARCHAR)", "string"


# ---- writing -----------------------------------------------------------------------------

def _create_table(
    con: duckdb.DuckDBPyConnection,
    reader: _Reader,
    planned: list[_Planned],
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
        if _is_late_type_error(str(exc)) and not reader.whole_file:
            raise _SampleTooSmall from None
        raise _source_error(exc, reader) from None
    finally:
        done.set()
        if poller:
            poller.join()


def _resolve_key(key: str | None, planned: list[_Planned]) -> str | None:
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
    null_row = con.execute(
        f"SELECT min(rowid) FROM out.data WHERE {col} IS NULL"
    ).fetchone()
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


# ---- messages a person can act on --------------------------------------------------------

def _is_late_type_error(message: str) -> bool:
    return "Could not convert string" in message or "JSON transform error" in message


def _source_error(exc: duckdb.Error, reader: _Reader) -> IngestError:
    message = str(exc)
    name = reader.name
    if reader.format == "csv":
        return IngestError(_csv_message(name, message))
    if reader.format == "parquet":
        return IngestError(f"{name} is not a readable Parquet file: {_first_line(message)}")
    if "expected records" in message or "non-record" in message:
        return IngestError(
            f"{name}: every item must be a JSON object with non-empty keys"
        )
    if "Expected top-level JSON array" in message:
        return IngestError(f"{name}: expected a JSON array of objects")
    if "Malformed JSON" in message or "JSON transform error" in message:
        return IngestError(_locate_json_error(reader, message))
    return IngestError(f"{name}: {_first_line(message)}")


def _csv_message(name: str, message: str) -> str:
    line = re.search(r"CSV Error on Line: (\d+)", message)
    where = f"{name} line {line.group(1)}" if line else name
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if fields:
        return f"{where}: expected {fields.group(1)} fields, found {fields.group(2)}"
    if "unterminated quote" in message.lower():
        return f"{where}: a quoted field is never closed"
    convert = re.search(r'column "(.*?)"\. Could not convert string "(.*?)" to \'(\w+)\'', message)
    if convert:
        return f"{where}: column {convert.group(1)!r}: cannot read {convert.group(2)!r}"
    if "unicode" in message.lower():
        return f"{where}: the text is not valid UTF-8"
    detail = message.split("\n", 2)
    reason = next((d for d in detail[1:] if d and not d.startswith("Original Line")), detail[0])
    return f"{where}: {_first_line(reason)}"


def _csv_diagnosis(path: Path, name: str, delimiter: str, exc: duckdb.Error) -> IngestError:
    """DuckDB's sniffer gives up on a bad file without a line number: find it ourselves."""
    expected = None
    line = 0
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            rows = csv.reader(handle, delimiter=delimiter, strict=True)
            while True:
                start = line + 1
                try:
                    fields = next(rows)
                except StopIteration:
                    break
                line = rows.line_num
                if not fields:
                    continue
                if expected is None:
                    expected = len(fields)
                elif len(fields) != expected:
                    return IngestError(
                        f"{name} line {start}: expected {expected} fields, found {len(fields)}"
                    )
    except csv.Error as error:
        return IngestError(f"{name} line {line + 1}: {error}")
    return IngestError(f"{name}: not a CSV file DuckDB can read ({_first_line(str(exc))})")


def _locate_json_error(reader: _Reader, message: str) -> str:
    """Line and column of a JSON syntax error, found by re-parsing: DuckDB's NDJSON line
    numbers skip blank lines and are off by one, and array errors only count records."""
    name = reader.name
    if reader.path.stat().st_size <= 256 * 1024 * 1024:
        text = reader.path.read_bytes().decode("utf-8-sig", errors="replace")
        try:
            if reader.format == "json":
                json.loads(text)
            else:
                for number, line in enumerate(text.splitlines(), start=1):
                    if line.strip():
                        try:
                            json.loads(line)
                        except json.JSONDecodeError as error:
                            return f"{name} line {number}: invalid JSON ({error.msg})"
        except json.JSONDecodeError as error:
            return f"{name} line {error.lineno} column {error.colno}: invalid JSON ({error.msg})"
    detail = re.search(r"(?:Malformed JSON|JSON transform error)[^:]*: (.*)", message)
    return f"{name}: invalid JSON ({detail.group(1).strip() if detail else _first_line(message)})"


def _first_line(message: str) -> str:
    text = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return re.sub(r"^[A-Za-z ]*Error: ", "", text)


def _sql_text(value: object) -> str:
    return str(value).replace("'", "''")
