"""Pages as response bodies: JSON, CSV (RFC 4180) or NDJSON.

JSON is `{"ok": true, "items": [...], "next": "<cursor>" | null}`. CSV and NDJSON carry rows
only; the gateway sends `page.next` in a header for them. Values are already JSON-ready
(dates and timestamps are ISO text), so rendering never converts types.

CSV cells are read by spreadsheets, which run a cell starting with `=`, `+`, `-` or `@` (or a
tab or carriage return) as a formula. Such text cells get a leading `'`. Numbers are written
as numbers: `-5` in an integer or number column is a value, not a formula, and stays as is;
the same text in a string column becomes `'-5`. NULL is an empty cell, booleans are
`true`/`false`.
"""

from __future__ import annotations

import csv
import io

import orjson

from claw402.datasets.pages import Page
from claw402.datasets.query import Format, InvalidQuery

MEDIA_TYPE: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def render(page: Page, fmt: Format, extras: dict[str, object] | None = None) -> tuple[bytes, str]:
    """The body and its media type; `extras` (`count`, `facets`) follow `next` in JSON."""
    if fmt == "json":
        body = orjson.dumps({"ok": True, "items": page.items, "next": page.next, **(extras or {})})
    elif fmt == "ndjson":
        body = b"".join(orjson.dumps(item) + b"\n" for item in page.items)
    elif fmt == "csv":
        body = _csv(page).encode("utf-8")
    else:
        raise InvalidQuery(f"unknown format {fmt!r}; use one of json, csv, ndjson")
    return body, MEDIA_TYPE[fmt]


def _csv(page: Page) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_cell(name) for name in page.columns])
    writer.writerows([_cell(value) for value in row] for row in page.rows)
    return buffer.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
