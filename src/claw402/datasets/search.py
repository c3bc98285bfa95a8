"""Substring search: every row's text as one memory-mapped line, scanned with SIMD.

Why: DuckDB's `contains` reads a 1M-row text column at ~3 GB/s (25 ms for the bench's
descriptions); StringZilla's `find` over the same bytes laid flat runs at ~15 GB/s. So ingest
writes, beside `data.duckdb`:

- `search.txt`: line i is row i's string values, lowercased by DuckDB and joined by U+001F
  (NULLs skipped), with any newline inside a value replaced by U+00FF;
- `search.idx`: JSON with the byte offset of every `BLOCK`-th line, so a match's row number
  is one bisect plus a newline count within a block.

A needle that is ASCII, not empty, and holds neither a newline nor U+001F (`searchable`) is
found in line i exactly when `contains(lower(concat_ws(chr(31), ...)), needle)` holds for row i.
That is `_q` itself, and a superset of `col__contains` and `col__icontains` for the same needle
(both imply the lowercased needle inside the lowercased column): the engine turns such filters
into a short list of candidate rows and checks the filters on those rows only. Any other needle,
or one matching too many rows, is left to DuckDB's scan.
"""

from __future__ import annotations

import contextlib
import os
import time
from bisect import bisect_right
from pathlib import Path

import duckdb
import orjson
import stringzilla

SEARCH_FILE = "search.txt"
INDEX_FILE = "search.idx"
BLOCK = 1024
CHUNK = 1 << 24  # bytes scanned between deadline checks
_FORMAT = 1


def searchable(needle: str) -> str | None:
    """The needle as the text file holds it (lowercased), or None when the file cannot answer."""
    if needle and needle.isascii() and "\n" not in needle and "\x1f" not in needle:
        return needle.lower()
    return None


def write(
    con: duckdb.DuckDBPyConnection, table: str, strings: list[str], text: Path, index: Path
) -> bool:
    """Write the two files for `table`'s string columns (SQL identifiers); False, and nothing
    left behind, when the text file is not the exact size its index says (then no search file:
    queries scan)."""
    line = f"replace(lower(concat_ws(chr(31), {', '.join(strings)})), chr(10), chr(255))"
    literal = str(text).replace("'", "''")
    try:
        # No quoting and no escaping: each value is written as is, one per line, in row order.
        con.execute(
            f"COPY (SELECT {line} FROM {table}) TO '{literal}' "
            "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(31))"
        )
        sizes = con.execute(
            f"SELECT sum(strlen({line}) + 1) FROM {table} GROUP BY rowid // {BLOCK} "
            f"ORDER BY rowid // {BLOCK}"
        ).fetchall()
        starts, total = [], 0
        for (size,) in sizes:
            starts.append(total)
            total += int(size)
        if os.path.getsize(text) != total:
            raise OSError(f"{text.name}: {os.path.getsize(text)} bytes, expected {total}")
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
        index.write_bytes(orjson.dumps(
            {"format": _FORMAT, "block": BLOCK, "rows": rows, "bytes": total, "starts": starts}
        ))
        return True
    except (OSError, duckdb.Error):
        for path in (text, index):
            with contextlib.suppress(OSError):
                path.unlink()
        return False


class TextIndex:
    """The search file of one dataset version, memory-mapped; safe to share between threads."""

    def __init__(self, text: stringzilla.Str, starts: list[int], block: int) -> None:
        self._text = text
        self._starts = starts
        self._block = block

    @classmethod
    def open(cls, directory: Path) -> TextIndex | None:
        """The index beside a dataset file; None when there is none (an older ingest) or it
        does not match its text file."""
        try:
            meta = orjson.loads((directory / INDEX_FILE).read_bytes())
            if meta.get("format") != _FORMAT:
                return None
            if meta["bytes"] == 0:
                return cls(stringzilla.Str(""), [0], meta["block"])
            text = stringzilla.Str(stringzilla.File(str(directory / SEARCH_FILE)))
        except (OSError, ValueError, KeyError, RuntimeError):
            return None
        if len(text) != meta["bytes"] or not meta["starts"]:
            return None
        return cls(text, meta["starts"], meta["block"])

    def rows(self, needle: str, *, limit: int, deadline: float | None = None) -> list[int] | None:
        """Ascending numbers of the rows whose line contains `needle` (as `searchable` returns
        it); None as soon as more than `limit` rows match. Past `deadline` (monotonic time,
        checked every `CHUNK` bytes, ~1 ms) it raises TimeoutError."""
        text, starts, block = self._text, self._starts, self._block
        found: list[int] = []
        last_block, last_end, last_row = -1, 0, 0
        pos = self._find(needle, 0, deadline)
        while pos >= 0:
            b = bisect_right(starts, pos) - 1
            if b == last_block:  # count lines from the previous match's line, not the block
                row = last_row + 1 + text[last_end + 1 : pos].count("\n")
            else:
                row = b * block + text[starts[b] : pos].count("\n")
            found.append(row)
            if len(found) > limit:
                return None
            last_block, last_row = b, row
            last_end = text.find("\n", pos)  # every line ends with one
            pos = self._find(needle, last_end + 1, deadline)
        return found

    def _find(self, needle: str, start: int, deadline: float | None) -> int:
        text, size, overlap = self._text, len(self._text), len(needle) - 1  # ASCII: 1 byte a char
        while start < size:
            end = min(size, start + CHUNK)
            hit = text[start : min(size, end + overlap)].find(needle)
            if hit >= 0:
                return start + hit
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("substring search ran past its deadline")
            start = end
        return -1
