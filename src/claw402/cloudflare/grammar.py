"""`grammar.js`: the query grammar's vocabulary, generated from `claw402.datasets.query`
(and `values.py`, `cursor.py`).

The tenant Worker's parser (templates/query.js) implements the rules; the words it accepts,
the limits it enforces, the formats and media types it answers in and the default page size
come from the Python source of truth through this module, so adding an operator or changing a
limit is one change in `datasets/query.py` (plus the rule itself in both parsers).
"""

from __future__ import annotations

import json

from claw402.cloudflare.bundle import Module
from claw402.datasets import cursor, query, values
from claw402.datasets.output import MEDIA_TYPE


def _regex(pattern: str) -> str:
    """A JavaScript RegExp that matches like Python's `fullmatch` of `pattern`."""
    return f"new RegExp({json.dumps('^(?:' + pattern + ')$')})"


def grammar_values() -> dict[str, object]:
    """Every generated constant as JSON data (the contract test compares the Worker's)."""
    return {
        "FORMATS": list(query.FORMATS),
        "OPERATORS": list(query.OPERATORS),
        "TEXT_OPERATORS": sorted(query.TEXT_OPERATORS),
        "CONTROL_PARAMS": list(query.CONTROL_PARAMS),
        "REPEATABLE_PARAMS": list(query.REPEATABLE_PARAMS),
        "MEDIA_TYPES": query.MEDIA_TYPES,
        "MEDIA_TYPE": MEDIA_TYPE,
        "BOOLS": values.BOOLS,
        "TYPE_ARTICLES": values.TYPE_ARTICLES,
        "TYPE_EXPECTED": values.TYPE_EXPECTED,
        "DEFAULT_LIMIT": query.DEFAULT_LIMIT,
        "MAX_FILTERS": query.MAX_FILTERS,
        "MAX_IN_VALUES": query.MAX_IN_VALUES,
        "MAX_VALUE_CHARS": query.MAX_VALUE_CHARS,
        "MAX_Q_CHARS": query.MAX_Q_CHARS,
        "MAX_FACETS": query.MAX_FACETS,
        "FACET_SIZE": query.FACET_SIZE,
        "MAX_CURSOR_CHARS": cursor.MAX_CURSOR_CHARS,
    }


def grammar_module() -> Module:
    lines = ["// Generated from claw402.datasets.query: do not edit."]
    for name, value in grammar_values().items():
        literal = json.dumps(value)
        if name == "TEXT_OPERATORS":
            literal = f"new Set({literal})"
        elif isinstance(value, dict):
            literal = f"Object.freeze({literal})"
        lines.append(f"export const {name} = {literal};")
    lines += [
        f"export const INT64_MIN = {values.INT64_MIN}n;",
        f"export const INT64_MAX = {values.INT64_MAX}n;",
        f"export const INT_RE = {_regex(values.INT_RE.pattern)};",
        f"export const NUM_RE = {_regex(values.NUM_RE.pattern)};",
        f"export const B64URL_RE = {_regex(cursor.B64URL_RE.pattern)};",
    ]
    return Module("grammar.js", ("\n".join(lines) + "\n").encode())
