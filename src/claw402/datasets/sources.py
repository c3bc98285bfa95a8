"""Reading a source file: which format it is, a DuckDB reader over it, and each column's plan.

Decisions: the first CSV row is the header unless DuckDB's sniffer says otherwise (then columns
are `column_1`...); names follow `schema.normalise_names`; a CSV that is not UTF-8 is read as
cp1252 (latin-1 when cp1252 cannot decode it); non-finite numbers and dates outside years
1-9999 become NULL; nested values become JSON text, BLOBs base64, 128-bit or unsigned 64-bit
integers out of the signed 64-bit range text; DECIMAL becomes a double; timestamps with a zone
become naive UTC.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from claw402.datasets.ingest_errors import IngestError, csv_diagnosis, source_error
from claw402.datasets.schema import Column, LogicalType, normalise_names, sql_ident

_DELIMITERS = (",", ";", "\t", "|")
_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_WIDE_INT_TYPES = {"UBIGINT", "HUGEINT", "UHUGEINT", "BIGNUM", "VARINT"}
_TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME"}
_NESTED_RE = re.compile(r"^(STRUCT|MAP|UNION)\(|\]$|^JSON$")

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


class SampleTooSmall(Exception):
    pass


@dataclass(frozen=True)
class Reader:
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
        path = sql_text(self.path)
        if self.format == "csv":
            return f"read_csv('{path}', {self.options})"  # typed by the sniff behind options
        if self.format == "parquet":
            return f"read_parquet('{path}')"
        layout = "array" if self.format == "json" else "newline_delimited"
        return f"read_json('{path}', format='{layout}', records=true{sample})"

    def full_sample(self) -> Reader:
        return Reader(**{**self.__dict__, "whole_file": True})


@dataclass(frozen=True)
class Planned:
    """A column as DuckDB reads it, the SQL converting it, and what it becomes."""

    source_name: str
    duck_name: str
    sql: str
    column: Column


def open_reader(con: duckdb.DuckDBPyConnection, source: Path, fmt: str, scratch: Path) -> Reader:
    if fmt != "csv":
        return Reader(source, source.name, fmt)
    head = _read_head(source)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return csv_reader(con, _transcode(source, scratch, "utf-16"), source.name)
    if not _is_utf8(head):
        return csv_reader(con, _transcode(source, scratch, None), source.name)
    try:
        return csv_reader(con, source, source.name)
    except _NotUtf8:
        return csv_reader(con, _transcode(source, scratch, None), source.name)


class _NotUtf8(Exception):
    pass


def csv_reader(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, *, whole_file: bool = False
) -> Reader:
    """read_csv with everything fixed by one sniff: DuckDB's own guesses can merge or drop a
    bad file's rows, and would treat lines starting with `#` as comments (silently lost)."""
    delimiter = _sniff_delimiter(_read_head(path).decode("utf-8-sig", errors="replace"))
    dialect = (
        f"delim='{sql_text(delimiter)}', quote='\"', escape='\"', skip=0, strict_mode=true, "
        "comment=''"
    )
    sample = ", sample_size=-1" if whole_file else ""
    try:
        sniffed = con.execute(
            "SELECT HasHeader, Columns, DateFormat, TimestampFormat "
            f"FROM sniff_csv('{sql_text(path)}', {dialect}{sample})"
        ).fetchone()
    except duckdb.Error as exc:
        if "unicode" in str(exc).lower():
            raise _NotUtf8 from None
        raise csv_diagnosis(path, name, delimiter, exc) from None
    assert sniffed is not None
    header, columns, date_format, timestamp_format = sniffed
    types = ", ".join(f"'{sql_text(c['name'])}': '{c['type']}'" for c in columns)
    options = (
        f"{dialect}, auto_detect=false, header={str(bool(header)).lower()}, "
        f"columns={{{types}}}, null_padding=false"
    )
    for option, value in (("dateformat", date_format), ("timestampformat", timestamp_format)):
        if value and value != "(empty)":
            options += f", {option}='{sql_text(value)}'"
    return Reader(path, name, "csv", options, delimiter, bool(header), whole_file)


def plan(con: duckdb.DuckDBPyConnection, reader: Reader) -> list[Planned]:
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader.sql}").fetchall()
    except duckdb.Error as exc:
        raise source_error(exc, reader) from None
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
        planned.append(Planned(source_name, duck_name, sql, Column(name, kind)))
    return planned


def _csv_header(reader: Reader) -> list[str] | None:
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
    con: duckdb.DuckDBPyConnection, reader: Reader, duck_name: str, duck_type: str
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
            f"timezone('UTC', {col})"
            if duck_type == "TIMESTAMP WITH TIME ZONE"
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


def sql_text(value: object) -> str:
    return str(value).replace("'", "''")
