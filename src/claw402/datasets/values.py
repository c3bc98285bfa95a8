"""Filter values: the text of a URL parameter -> a value of its column's type, or `InvalidQuery`.

The accepted forms of each type are specified in `query.py`'s docstring.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime

from claw402.datasets.schema import Column

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Value = int | float | bool | str | date | datetime

INT_RE = re.compile(r"[+-]?[0-9]+")
NUM_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TS_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
BOOLS = {"true": True, "1": True, "false": False, "0": False}


class InvalidQuery(ValueError):
    """A request the grammar rejects; `detail` is meant for the caller (HTTP 400)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def convert(value: str, column: Column) -> Value:
    """A filter value in the column's type; InvalidQuery names the column and the type."""
    kind = column.type
    try:
        if kind == "string":
            return value
        if kind == "integer" and INT_RE.fullmatch(value) and len(value) <= 20:
            number = int(value)
            if INT64_MIN <= number <= INT64_MAX:
                return number
        elif kind == "number" and NUM_RE.fullmatch(value) and len(value) <= 64:
            number_f = float(value)
            if math.isfinite(number_f):
                return number_f
        elif kind == "boolean" and value.lower() in BOOLS:
            return BOOLS[value.lower()]
        elif kind == "date" and _DATE_RE.fullmatch(value):
            return date.fromisoformat(value)
        elif kind == "timestamp" and _TS_RE.fullmatch(value):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment
    except (ValueError, OverflowError):
        pass
    raise InvalidQuery(
        f"{column.name!r} is {TYPE_ARTICLES[kind]} column: {value[:50]!r} "
        f"is not {TYPE_EXPECTED[kind]}"
    )


TYPE_ARTICLES: dict[str, str] = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "string": "a string",
    "date": "a date",
    "timestamp": "a timestamp",
}
TYPE_EXPECTED: dict[str, str] = {
    "integer": "a whole number within 64 bits",
    "number": "a finite number",
    "boolean": "true, false, 1 or 0",
    "string": "text",
    "date": "a date as YYYY-MM-DD",
    "timestamp": "a timestamp as YYYY-MM-DDTHH:MM:SS (optionally .ffffff and Z or ±HH:MM)",
}
