"""Substring search: each string column as memory-mapped lines, scanned with SIMD.

Why: DuckDB's `contains` reads a 1M-row text column at ~3 GB/s (25 ms for the bench's
descriptions); StringZilla's `find` over the same bytes laid flat runs at ~15 GB/s. So ingest
writes, beside `data.duckdb`:

- `search-<n>.txt`, one per string column: line i is row i's value lowercased by DuckDB, with
  any newline inside it replaced by U+00FF (NULL: an empty line);
- `search.idx`: JSON naming each column's file, its size, and the byte offset of every
  `BLOCK`-th line, so a match's row number is a count of newlines from a known line.

A needle that is ASCII, not empty and without a newline (`searchable`) is found in line i
exactly when `contains(lower(col), needle)` holds for row i: that is `__icontains` and each
column's part of `_q`, and a superset of `__contains` (the needle inside the value implies the
lowercased needle inside the lowercased value). The same files written without lowering
(`write(..., lower=False)`: the row store's, rowstore.py) answer `__contains` exactly: an ASCII
needle's bytes never match inside a multi-byte character. The engine turns such a filter into a
short list of candidate rows and checks the query's filters on those rows only. Any other
needle, or one matching too many rows, is left to DuckDB's scan.

A search is a `Scan`: matching rows taken a run at a time, so a page stops reading once it has
its rows, and each match costs a few calls into StringZilla (find, count the newlines since
the last match, find the end of its line), not a generator step per row.
"""

from __future__ import annotations

import contextlib
import os
import time
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import orjson
import stringzilla

from claw402.datasets.schema import sql_ident

if TYPE_CHECKING:
    from claw402.datasets.query import Query

INDEX_FILE = "search.idx"
BLOCK = 1024
CHUNK = 1 << 20  # bytes scanned between deadline checks
_READ = 1 << 24  # bytes read at a time to find the block starts
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
    *,
    lower: bool = True,
) -> list[Path]:
    """Write the search files for `table`'s string `columns` into `directory`, their names
    starting with `prefix` (ingest writes under a temporary prefix, then renames); the values
    as they are when not `lower`. Returns the files written; none, and nothing left behind,
    when a text file does not hold one line per row (then queries scan)."""
    if not columns:
        return []
    written: list[Path] = []
    try:
        rows = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
        meta: dict[str, object] = {"format": _FORMAT, "block": BLOCK, "rows": rows, "columns": {}}
        for n, column in enumerate(columns):
            value = f"lower({sql_ident(column)})" if lower else sql_ident(column)
            name = f"search-{n}.txt"
            path = directory / f"{prefix}{name}"
            written.append(path)
            literal = str(path).replace("'", "''")
            # No quoting and no escaping: each value is written as is, one per line, in order.
            # Each value is lowered once, here; the block offsets are read from the file.
            con.execute(
                f"COPY (SELECT coalesce(replace({value}, chr(10), chr(255)), '') FROM {table}) "
                f"TO '{literal}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', "
                "DELIMITER chr(31))"
            )
            size = os.path.getsize(path)
            starts = _block_starts(path, rows)
            meta["columns"][column] = {"file": name, "bytes": size, "starts": starts}  # type: ignore[index]
        index = directory / f"{prefix}{INDEX_FILE}"
        written.append(index)
        index.write_bytes(orjson.dumps(meta))
        return written
    except (OSError, duckdb.Error):
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        return []


def _block_starts(path: Path, rows: int) -> list[int]:
    """The byte offset of every `BLOCK`-th line of the file at `path`, read `_READ` bytes at a
    time (mapped whole, a 10M-row column would count hundreds of MB in the ingest's RSS)."""
    starts: list[int] = []
    first = base = 0  # the buffer's first line and where it starts in the file
    carry = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_READ):
            buf = carry + chunk
            cut = buf.rfind(b"\n") + 1  # whole lines; the rest waits for the next read
            carry, text = buf[cut:], stringzilla.Str(buf)
            lines = text.count("\n", 0, cut)
            line, pos = first, 0  # line `line` starts at `pos` in the buffer
            target = -(-first // BLOCK) * BLOCK
            while target < first + lines:
                if target > line:  # one split, stopped after the lines to skip
                    pos = cut - len(text[pos:cut].split("\n", maxsplit=target - line)[-1])
                    line = target
                starts.append(base + pos)
                target += BLOCK
            first, base = first + lines, base + cut
    if carry or first != rows:
        raise OSError(f"{path.name}: not one line per row")
    return starts


class Scan(Protocol):
    """A search's matching rows, ascending, taken a run at a time."""

    def take(self, n: int) -> list[int]:
        """The next (up to) `n` rows; fewer means the search has no more."""
        ...


class TextIndex:
    """The search files of one dataset version, memory-mapped; safe to share between threads
    (each search is its own `Scan`)."""

    def __init__(self, columns: dict[str, Lines], rows: int) -> None:
        self._columns = columns
        self.row_count = rows

    @classmethod
    def open(cls, directory: Path) -> TextIndex | None:
        """The index in `directory`; None when there is none (an older ingest) or it does not
        match its files."""
        try:
            meta = orjson.loads((directory / INDEX_FILE).read_bytes())
            if meta.get("format") != _FORMAT:
                return None
            columns = {}
            rows = int(meta["rows"])
            for name, entry in meta["columns"].items():
                size, starts = entry["bytes"], entry["starts"]
                text = (
                    stringzilla.Str(stringzilla.File(str(directory / entry["file"])))
                    if size
                    else stringzilla.Str("")
                )
                if len(text) != size or (size and not starts):
                    return None
                columns[name] = Lines(text, starts, meta["block"], rows)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        return cls(columns, rows)

    def __contains__(self, column: str) -> bool:
        return column in self._columns

    def rows(
        self, column: str | None, needle: str, *, limit: int, deadline: float | None = None
    ) -> list[int] | None:
        """Ascending numbers of the rows whose `column` (any string column when None) holds
        `needle` (as the files hold it: `searchable`'s for lowered files); None when there is
        no such column or more than `limit` rows match. Past `deadline` (monotonic time,
        checked every `CHUNK` bytes without a match, ~0.1 ms) it raises TimeoutError."""
        scan = self.scan(column, needle, deadline=deadline)
        if scan is None:
            return None
        rows = scan.take(limit + 1)
        return rows if len(rows) <= limit else None

    def scan(
        self,
        column: str | None,
        needle: str,
        *,
        start: int = 0,
        stop: int | None = None,
        deadline: float | None = None,
    ) -> Scan | None:
        """The rows from `start` (up to `stop`) whose `column` (any when None) holds `needle`,
        lazily: a page in source order stops scanning once it has its rows."""
        stop = self.row_count if stop is None else min(stop, self.row_count)
        if column is not None:
            found = self._columns.get(column)
            return found.scan(needle, start, stop, deadline) if found else None
        return _AnyScan(list(self._columns.values()), needle, start, stop, deadline)


class Lines:
    """One column's file: a line per row, and where every `block`-th line starts."""

    def __init__(self, text: stringzilla.Str, starts: list[int], block: int, rows: int) -> None:
        self.text = text
        self.starts = starts
        self.block = block
        self.rows = rows

    def scan(self, needle: str, start: int, stop: int, deadline: float | None) -> _LineScan:
        return _LineScan(self, needle, start, stop, deadline)

    def offset(self, row: int) -> int:
        """Where line `row` starts (the end of the text past the last row)."""
        b, k = divmod(row, self.block)
        if row >= self.rows or b >= len(self.starts):
            return len(self.text)
        pos = self.starts[b]
        if k:  # the k-th line of its block: one split, stopped after k lines
            rest = self.text[pos:].split("\n", maxsplit=k)
            pos = len(self.text) - len(rest[-1]) if len(rest) > k else len(self.text)
        return pos


class _LineScan:
    """One file's matching rows in [start, stop)."""

    def __init__(
        self, lines: Lines, needle: str, start: int, stop: int, deadline: float | None
    ) -> None:
        self.text, self.needle, self.deadline = lines.text, needle, deadline
        self.line = self.pos = lines.offset(start)  # where row `self.row` starts; scanned to
        self.row = start
        self.end = lines.offset(stop)  # lines end before it: no match runs past it
        self.done = self.pos >= self.end

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        if self.done or n <= 0:
            return out
        _check(self.deadline)
        text, needle, end = self.text, self.needle, self.end
        find, count = text.find, text.count
        line, row, pos = self.line, self.row, self.pos
        overlap = len(needle) - 1  # ASCII: a byte a character
        try:
            while len(out) < n:
                edge = pos + CHUNK
                if edge >= end:
                    hit = find(needle, pos, end)
                    if hit < 0:
                        self.done = True
                        break
                else:
                    hit = find(needle, pos, min(end, edge + overlap))
                    if hit < 0:  # none starts before `edge`
                        pos = edge
                        _check(self.deadline)
                        continue
                row += count("\n", line, hit)
                out.append(row)
                line = pos = find("\n", hit, end) + 1  # every line ends with one
                row += 1
                if line == 0:  # cannot happen with files `write` checked: end the search
                    self.done = True
                    break
        finally:
            self.line, self.row, self.pos = line, row, pos
        if pos >= end:
            self.done = True
        return out


class _AnyScan:
    """Every column, a window of rows at a time: a needle frequent in one column fills a page
    from the first windows, without reading the other columns to their end first. Windows
    start at `FIRST_WINDOW` rows and double up to `WINDOW`: a page of a common needle then
    reads the other columns for a few thousand rows, not `WINDOW`. Within a window each column
    is read only as far as the page needs (each column's first n matches hold the first n of
    any column)."""

    def __init__(
        self, columns: list[Lines], needle: str, start: int, stop: int, deadline: float | None
    ) -> None:
        self.columns, self.needle, self.deadline = columns, needle, deadline
        self.low, self.stop, self.size = start, stop, FIRST_WINDOW
        self.high = start
        self.scans: list[_LineScan] = []
        self.found: list[list[int]] = []  # per column: matches taken, not yet handed out

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if not self.scans:
                if self.low >= self.stop:
                    break
                size = self.size  # a block boundary: a cheap offset
                self.high = min(self.stop, (self.low // size + 1) * size)
                self.scans = [c.scan(self.needle, self.low, self.high, self.deadline)
                              for c in self.columns]  # fmt: skip
                self.found = [[] for _ in self.columns]
                self.size = min(WINDOW, size * 2)
            need = n - len(out)
            for scan, found in zip(self.scans, self.found, strict=True):
                if len(found) < need and not scan.done:
                    found += scan.take(need - len(found))
            merged = sorted(_union(self.found))[:need]
            out += merged
            if len(merged) < need:  # every column is done with this window
                self.scans, self.low = [], self.high
            else:
                last = merged[-1]
                self.found = [f[bisect_right(f, last) :] for f in self.found]
        return out


def _union(lists: Iterable[list[int]]) -> set[int]:
    found: set[int] = set()
    for rows in lists:
        found.update(rows)
    return found


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError("substring search ran past its deadline")


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
