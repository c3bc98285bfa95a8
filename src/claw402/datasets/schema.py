"""Columns and their logical types: the vocabulary shared by ingest, query, engine and OpenAPI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LogicalType = Literal["integer", "number", "boolean", "string", "date", "timestamp"]
LOGICAL_TYPES: tuple[LogicalType, ...] = (
    "integer",
    "number",
    "boolean",
    "string",
    "date",
    "timestamp",
)
# Types a key column may have: each has one exact text form in a URL path.
KEY_TYPES = frozenset({"integer", "string", "date"})


@dataclass(frozen=True)
class Column:
    name: str
    type: LogicalType

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Column:
        if data["type"] not in LOGICAL_TYPES:
            raise ValueError(f"unknown column type {data['type']!r}")
        return cls(name=data["name"], type=data["type"])  # type: ignore[arg-type]


def normalise_names(raw: list[str]) -> list[str]:
    """Source column names made safe for the query grammar, unique and never empty.

    Rules, in order: trim surrounding whitespace; turn each `,` into `_` (lists in `_sort` and
    `_fields` are comma-separated); collapse runs of `_` into one (`__` separates an operator);
    drop leading `_` and `-` (`_` marks control parameters, `-` a descending sort); an empty
    result becomes `column_<position>` (1-based). A name equal to an earlier one, ignoring case,
    gets `_2`, `_3`, ... appended, so `id, ID` becomes `id, ID_2`. `rowid` is taken by the
    storage engine's row number, so a source column `rowid` becomes `rowid_2`.
    """
    names: list[str] = []
    taken: set[str] = {"rowid"}
    for position, original in enumerate(raw, start=1):
        name = original.strip().replace(",", "_")
        while "__" in name:
            name = name.replace("__", "_")
        name = name.lstrip("_-") or f"column_{position}"
        candidate, suffix = name, 1
        while candidate.lower() in taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        taken.add(candidate.lower())
        names.append(candidate)
    return names


def sql_ident(name: str) -> str:
    """A column name as a quoted SQL identifier (names come only from the schema)."""
    return '"' + name.replace('"', '""') + '"'
