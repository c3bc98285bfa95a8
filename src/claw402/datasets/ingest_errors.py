"""Messages a person can act on when DuckDB cannot read a source: the line or field, and why."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from claw402.datasets.sources import Reader


class IngestError(ValueError):
    """The file cannot become a dataset; the message names the line or field and says why."""


def is_late_type_error(message: str) -> bool:
    return "Could not convert string" in message or "JSON transform error" in message


def source_error(exc: duckdb.Error, reader: Reader) -> IngestError:
    message = str(exc)
    name = reader.name
    if reader.format == "csv":
        return IngestError(_csv_message(name, message))
    if reader.format == "parquet":
        return IngestError(f"{name} is not a readable Parquet file: {first_line(message)}")
    if "expected records" in message or "non-record" in message:
        return IngestError(f"{name}: every item must be a JSON object with non-empty keys")
    if "Expected top-level JSON array" in message:
        return IngestError(f"{name}: expected a JSON array of objects")
    if "Malformed JSON" in message or "JSON transform error" in message:
        return IngestError(_locate_json_error(reader, message))
    return IngestError(f"{name}: {first_line(message)}")


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
    return f"{where}: {first_line(reason)}"


def csv_diagnosis(path: Path, name: str, delimiter: str, exc: duckdb.Error) -> IngestError:
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
    return IngestError(f"{name}: not a CSV file DuckDB can read ({first_line(str(exc))})")


def _locate_json_error(reader: Reader, message: str) -> str:
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
    return f"{name}: invalid JSON ({detail.group(1).strip() if detail else first_line(message)})"


def first_line(message: str) -> str:
    text = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return re.sub(r"^[A-Za-z ]*Error: ", "", text)
