"""Cursors: the `next` token of a page, and checking one a caller sends back.

The format is specified in `query.py`'s docstring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Sequence

import orjson

from claw402.datasets.schema import Column
from claw402.datasets.values import INT64_MAX, INT64_MIN, InvalidQuery, Value, convert

MAX_CURSOR_CHARS = 4096
B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")


def encode_cursor(binding: str, values: Sequence[object], rowid: int) -> str:
    """The `next` cursor after a row whose sort values (output form) and row number are given."""
    payload = _b64(orjson.dumps({"k": list(values), "r": rowid}))
    return f"{payload}.{_check(binding, payload)}"


def binding(version: str, sort: str, q: str, pairs: list[tuple[str, str]]) -> str:
    return orjson.dumps([version, sort, q, sorted(pairs)]).decode()


def _check(binding: str, payload: str) -> str:
    digest = hashlib.sha256(f"{binding}.{payload}".encode()).digest()
    return _b64(digest[:9])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_cursor(
    raw: str, binding: str, columns: Sequence[Column]
) -> tuple[tuple[Value | None, ...], int]:
    """The sort values and row number in `raw`, checked against the query's `binding`."""
    payload, sep, check = raw.partition(".")
    if (
        not sep
        or len(raw) > MAX_CURSOR_CHARS
        or not B64URL_RE.fullmatch(payload)
        or check != _check(binding, payload)
    ):
        raise InvalidQuery(
            "invalid _cursor: it was damaged, or issued for other filters, sort, search or "
            "dataset version; start again without _cursor"
        )
    try:
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidQuery("invalid _cursor: unreadable") from None
    if not isinstance(data, dict) or set(data) != {"k", "r"}:
        raise InvalidQuery("invalid _cursor: unexpected content")
    values, rowid = data["k"], data["r"]
    if (
        not isinstance(values, list)
        or len(values) != len(columns)
        or type(rowid) is not int
        or not 0 <= rowid <= INT64_MAX
    ):
        raise InvalidQuery("invalid _cursor: unexpected content")
    return (
        tuple(_cursor_value(v, c) for v, c in zip(values, columns, strict=True)),
        rowid,
    )


def _cursor_value(value: object, column: Column) -> Value | None:
    kind = column.type
    if value is None:
        return None
    if kind == "integer" and type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    if kind == "number" and type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    if kind == "boolean" and type(value) is bool:
        return value
    if kind == "string" and type(value) is str:
        return value
    if kind in ("date", "timestamp") and type(value) is str:
        try:
            return convert(value, column)
        except InvalidQuery:
            pass
    raise InvalidQuery("invalid _cursor: unexpected content")
