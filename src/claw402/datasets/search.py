"""Substring search: each string column as memory-mapped lines, scanned with SIMD.

Why: DuckDB's `contains` reads a 1M-row text column at ~3 GB/s (25 ms for the bench's
descriptions); StringZilla's `find` over the same bytes laid flat runs at ~15 GB/s. So ingest
writes, beside `data.duckdb`:

- `search-<n>.txt`, one per string column: line i is row i's value lowercased by DuckDB, with
  any newline inside it replaced by U+00FF (NULL: an empty line);
- `search.idx`: JSON naming each column's file, its size, and the byte offset of every
  `BLOCK`-th line, so a match's row number is one bisect plus a newline count within a block.

A needle that is ASCII, not empty and without a newline (`searchable`) is found in line i
exactly when `contains(lower(col), needle)` holds for row i: that is `__icontains` and each
column's part of `_q`, and a superset of `__contains` (the needle inside the value implies the
lowercased needle inside the lowercased value). The engine turns such a filter into a short list
of candidate rows and checks the query's filters on those rows only. Any other needle, or one
matching too many rows, is left to DuckDB's scan.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import orjson
import stringzilla

from claw402.datasets.schema import sql_ident

if TYPE_CHECKING:
    from claw402.datasets.query import Query

INDEX_FILE = "search.idx"
BLOCK = 1024
CHUNK = 1 << 24  # bytes scanned between deadline checks
_FORMAT = 3
WINDOW = 256 * BLOCK  # rows `_q` searches in every column before it moves on (at most)
FIRST_WINDOW = 4 * BLOCK


def searchable(needle: str) -> str | None:
    """The needle as the search files hold it (lowercased), or None when they cannot answer."""
    if needle and needle.isascii() and "\n" not in needle:
        return needle.lower()
    return None


def files(directory: Path) -> list[Path]:
    """The search files of the dataset in `directory` (for clean-up)."""
    return sorted(directory.glob("search*"))


def write(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    directory: Path,
    prefix: str = "",
) -> list[Path]:
    """Write the search files for `table`'s string `columns` into `directory`, their names
    starting with `prefix` (ingest writes under a temporary prefix, then renames). Returns the
    files written; none, and nothing left behind, when a text file is not the exact size its
    index says (then queries scan)."""
    if not columns:
        return []
    lines = [f"replace(lower({sql_ident(c)}), chr(10), chr(255))" for c in columns]
    written: list[Path] = []
    try:
        sizes = con.execute(
            "SELECT count(*), "
            + ", ".join(f"sum(coalesce(strlen({line}), 0) + 1)" for line in lines)
            + f" FROM {table} GROUP BY rowid // {BLOCK} ORDER BY rowid // {BLOCK}"
        ).fetchall()
        rows = sum(int(row[0]) for row in sizes)
        meta: dict[str, object] = {"format": _FORMAT, "block": BLOCK, "rows": rows, "columns": {}}
        for n, (column, line) in enumerate(zip(columns, lines, strict=True)):
            name = f"search-{n}.txt"
            path = directory / f"{prefix}{name}"
            written.append(path)
            literal = str(path).replace("'", "''")
            # No quoting and no escaping: each value is written as is, one per line, in order.
            con.execute(
                f"COPY (SELECT coalesce({line}, '') FROM {table}) TO '{literal}' "
                "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(31))"
            )
            starts, total = [], 0
            for row in sizes:
                starts.append(total)
                total += int(row[n + 1])
            if os.path.getsize(path) != total:
                raise OSError(f"{name}: {os.path.getsize(path)} bytes, expected {total}")
            meta["columns"][column] = {"file": name, "bytes": total, "starts": starts}  # type: ignore[index]
        index = directory / f"{prefix}{INDEX_FILE}"
        written.append(index)
        index.write_bytes(orjson.dumps(meta))
        return written
    except (OSError, duckdb.Error):
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        return []


class TextIndex:
    """The search files of one dataset version, memory-mapped; safe to share between threads."""

    def __init__(self, columns: dict[str, _Column], rows: int) -> None:
        self._columns = columns
        self._rows = rows

    @classmethod
    def open(cls, directory: Path) -> TextIndex | None:
        """The index beside a dataset file; None when there is none (an older ingest) or it
        does not match its files."""
        try:
            meta = orjson.loads((directory / INDEX_FILE).read_bytes())
            if meta.get("format") != _FORMAT:
                return None
            columns = {}
            for name, entry in meta["columns"].items():
                size, starts = entry["bytes"], entry["starts"]
                text = (
                    stringzilla.Str(stringzilla.File(str(directory / entry["file"])))
                    if size
                    else stringzilla.Str("")
                )
                if len(text) != size or (size and not starts):
                    return None
                columns[name] = _Column(text, starts, meta["block"])
            rows = int(meta["rows"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        return cls(columns, rows)

    def rows(
        self, column: str | None, needle: str, *, limit: int, deadline: float | None = None
    ) -> list[int] | None:
        """Ascending numbers of the rows whose `column` (any string column when None) holds
        `needle` (as `searchable` returns it); None when there is no such column or more than
        `limit` rows match. Past `deadline` (monotonic time, checked every `CHUNK` bytes,
        ~1 ms) it raises TimeoutError."""
        found = self.iter_rows(column, needle, deadline=deadline)
        if found is None:
            return None
        rows = list(itertools.islice(found, limit + 1))
        return rows if len(rows) <= limit else None

    def iter_rows(
        self, column: str | None, needle: str, *, start: int = 0, deadline: float | None = None
    ) -> Iterator[int] | None:
        """`rows` from row `start` on, lazily: a page in source order stops scanning once it
        has its rows."""
        if column is not None:
            found = self._columns.get(column)
            return found.iter_rows(needle, start, deadline) if found else None
        return self._any_column(needle, start, deadline)

    def _any_column(self, needle: str, start: int, deadline: float | None) -> Iterator[int]:
        """Every column, a window of rows at a time: a needle frequent in one column fills a
        page from the first windows, without reading the other columns to their end first.
        Windows start at `FIRST_WINDOW` rows and double up to `WINDOW`: a page of a common
        needle then reads the other columns for a few thousand rows, not `WINDOW`."""
        low, size = start, FIRST_WINDOW
        while low < self._rows:
            high = min(self._rows, (low // size + 1) * size)  # a block boundary: cheap offset
            parts = [c.iter_rows(needle, low, deadline, stop=high) for c in self._columns.values()]
            for row, _ in itertools.groupby(heapq.merge(*parts)):
                yield row
            low, size = high, min(WINDOW, size * 2)


class _Column:
    def __init__(self, text: stringzilla.Str, starts: list[int], block: int) -> None:
        self.text = text
        self.starts = starts
        self.block = block

    def iter_rows(
        self, needle: str, start: int, deadline: float | None, stop: int | None = None
    ) -> Iterator[int]:
        """Rows from `start` (up to `stop`) whose line holds `needle`."""
        text, starts, block = self.text, self.starts, self.block
        end = len(text) if stop is None else self.offset(stop)
        last_block, last_end, last_row = -1, 0, 0
        pos = self.find(needle, self.offset(start), end, deadline)
        while pos >= 0:
            b = bisect_right(starts, pos) - 1
            if b == last_block:  # count lines from the previous match's line, not the block
                row = last_row + 1 + text[last_end + 1 : pos].count("\n")
            else:
                row = b * block + text[starts[b] : pos].count("\n")
            yield row
            last_block, last_row = b, row
            last_end = text.find("\n", pos)  # every line ends with one: on to the next line
            if last_end < 0:
                return
            pos = self.find(needle, last_end + 1, end, deadline)

    def offset(self, row: int) -> int:
        """Where line `row` starts (the end of the text past the last row)."""
        b = row // self.block
        if b >= len(self.starts):
            return len(self.text)
        pos = self.starts[b]
        for _ in range(row - b * self.block):
            pos = self.text.find("\n", pos) + 1
            if pos == 0:
                return len(self.text)
        return pos

    def find(self, needle: str, start: int, size: int, deadline: float | None) -> int:
        """The first match starting in [start, size), or -1. Lines end before `size`, so a
        match never runs past it."""
        text, overlap = self.text, len(needle) - 1  # ASCII: 1 byte a char
        while start < size:
            end = min(size, start + CHUNK)
            hit = text[start : min(size, end + overlap)].find(needle)
            if hit >= 0:
                return start + hit
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("substring search ran past its deadline")
            start = end
        return -1


def search_plan(query: Query) -> tuple[str | None, str] | None:
    """The (column, needle) the search files can narrow the rows by, if any: one filter is
    enough. A column's own filter (one file to scan, not all) first, the longest needle
    first."""
    options: list[tuple[bool, int, str | None, str]] = []
    for f in query.filters:
        if f.op in ("contains", "icontains") and (needle := searchable(f.value)):  # type: ignore[arg-type]
            options.append((True, len(needle), f.column, needle))
    if query.q and (needle := searchable(query.q)):
        options.append((False, len(needle), None, needle))
    if not options:
        return None
    _, _, column, needle = max(options, key=lambda o: (o[0], o[1]))
    return column, needle


def exact_search(query: Query, column: str | None) -> list[tuple[str, str]] | None:
    """Whether the search files' rows for (`column`, needle) are the query's answer: the
    case-sensitive `(column, value)` checks left to make on them, or None when other filters
    must be checked too. `_q` and `__icontains` with a searchable needle are exact (see
    `searchable`); `__contains` is exact up to case."""
    if column is None:  # `_q` was chosen: no column filter can narrow it
        return [] if not query.filters else None
    if query.q or len(query.filters) != 1:
        return None
    only = query.filters[0]  # the filter `search_plan` chose: contains or icontains
    return [(only.column, str(only.value))] if only.op == "contains" else []
