"""A version's rows rendered once, and its numeric columns laid flat and sorted, memory-mapped.

Why: under load a DuckDB query costs milliseconds of CPU whatever it returns (a 100-row
keyset page: ~4 ms), and rendering a page rebuilds dicts and JSON each time. A dataset
version never changes, so its rows are rendered to JSON once and a page is a join of byte
slices (`indexed.py` answers from here). Built beside the version's files, in `rows/`:

- `rows.json`: every row's JSON object as the page renders it (`output.render`), each
  followed by `,`, in row order; `offsets.i64`: where row i starts (n + 1 entries), so rows
  lo..hi are one slice;
- per integer, number or date column without NULL or NaN: `col-<n>.bin`, its values in row
  order (int64, float64, or a date's proleptic Gregorian ordinal as int64), and unless they
  never decrease (a sorted key: its rows for a range are a row range), `perm-<n>.bin`, the
  row numbers in (value, row) order, and `sorted-<n>.bin`, the values in that order;
- per string column, its values as they are, as search files (`search.py`, not lowered:
  `__contains` is found exactly, with no row to parse); none for a column whose values are
  all plain (ASCII without capitals or newlines: lowering leaves them as they are, so the
  version's own search files hold them as they are);
- `meta.json`, written last, naming them.

The files are written under a temporary name and renamed: a reader sees all of them or
none. Mapped files are page cache, not a worker's own memory, and every worker shares them.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import shutil
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import duckdb
import orjson

from claw402.datasets import search
from claw402.datasets.schema import Column, sql_ident
from claw402.datasets.search import TextIndex
from claw402.datasets.sql import select_list
from claw402.datasets.storage import attach

log = logging.getLogger("claw402.datasets")
FOLDER = "rows"
_FORMAT = 3  # 2: date columns laid flat; 3: string columns' text as is (older: rebuilt)
_FETCH = 65_536
NUMERIC = {"integer": "q", "number": "d", "date": "q"}
MIN_BYTES = 4 << 20  # data files below this (some 100k rows) are left to DuckDB


class FlatColumn:
    """One numeric column: values by row, and (unless `monotonic`) rows and values sorted.
    A date column holds ordinals: `stored` turns a query's value into one, `shown` one back
    into the page's (and a cursor's) ISO text."""

    __slots__ = ("dates", "monotonic", "perm", "sorted", "values")

    def __init__(self, values: memoryview, perm: memoryview | None, ordered: memoryview | None,
                 dates: bool = False) -> None:  # fmt: skip
        self.values = values
        self.monotonic = perm is None
        self.perm = perm  # row numbers in (value, row) order
        self.sorted = values if ordered is None else ordered  # values in that order
        self.dates = dates

    def stored(self, value: object) -> object:
        return value.toordinal() if self.dates else value  # type: ignore[attr-defined]

    def shown(self, row: int) -> object:
        value = self.values[row]
        return date.fromordinal(value).isoformat() if self.dates else value


class RowStore:
    """The mapped files of one version; safe to share between threads (read only)."""

    def __init__(self, rows: int, data: mmap.mmap | bytes, offsets: memoryview,
                 columns: dict[str, FlatColumn], maps: list[mmap.mmap],
                 plain: frozenset[str] = frozenset(), cased: TextIndex | None = None,
                 ) -> None:  # fmt: skip
        self.rows = rows
        self.data = data
        self.offsets = offsets
        self.columns = columns
        self._maps = maps
        self._plain = plain  # string columns the version's (lowered) search files hold as is
        self._cased = cased

    def text_as_is(self, column: str, lowered: TextIndex | None) -> TextIndex | None:
        """The search files that hold `column`'s values as they are (`__contains` is then
        found exactly), given the version's own; None when there are none."""
        if column in self._plain:
            return lowered if lowered is not None and column in lowered else None
        return self._cased if self._cased is not None and column in self._cased else None

    def slice(self, lo: int, hi: int) -> bytes:
        """Rows lo..hi (hi excluded) as JSON objects joined by commas."""
        if hi <= lo:
            return b""
        return self.data[self.offsets[lo] : self.offsets[hi] - 1]

    def row(self, i: int) -> bytes:
        return self.data[self.offsets[i] : self.offsets[i + 1] - 1]

    def join(self, rows: Sequence[int]) -> bytes:
        """Rows, by number, as JSON objects joined by commas."""
        data, offsets = self.data, self.offsets
        return b",".join([data[offsets[r] : offsets[r + 1] - 1] for r in rows])

    @classmethod
    def open(cls, data_file: Path) -> RowStore | None:
        """The store beside `data_file`; None when there is none, it does not hold, or it was
        built from another file (an earlier ingest into the same folder)."""
        folder = data_file.parent / FOLDER
        try:
            meta = orjson.loads((folder / "meta.json").read_bytes())
            if meta.get("format") != _FORMAT or meta.get("of") != _identity(data_file):
                return None
            rows = int(meta["rows"])
            maps: list[mmap.mmap] = []
            data = _map(folder / "rows.json", maps)
            offsets = _view(folder / "offsets.i64", "q", maps)
            if len(offsets) != rows + 1 or len(data) != (offsets[rows] if rows else 0):
                return None
            columns = {}
            for name, entry in meta["columns"].items():
                code, n = entry["code"], entry["n"]
                values = _view(folder / f"col-{n}.bin", code, maps)
                perm = ordered = None
                if not entry["monotonic"]:
                    perm = _view(folder / f"perm-{n}.bin", "q", maps)
                    ordered = _view(folder / f"sorted-{n}.bin", code, maps)
                if len(values) != rows or (perm is not None and len(perm) != rows):
                    return None
                columns[name] = FlatColumn(values, perm, ordered, entry.get("dates", False))
            cased = TextIndex.open(folder) if meta["cased"] else None
            if meta["cased"] and (cased is None or cased.row_count != rows):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(rows, data, offsets, columns, maps, frozenset(meta["plain"]), cased)


def _map(path: Path, maps: list[mmap.mmap]) -> mmap.mmap | bytes:
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    maps.append(mapped)
    return mapped


def _view(path: Path, code: str, maps: list[mmap.mmap]) -> memoryview:
    data = _map(path, maps)
    return memoryview(data).cast(code) if data else memoryview(array(code))


def _identity(data_file: Path) -> list[int]:
    found = os.stat(data_file)
    return [found.st_size, found.st_mtime_ns, found.st_ino]


def build(data_file: Path, columns: Sequence[Column], table: str = "data") -> bool:
    """Write `rows/` beside `data_file` (a version's DuckDB or Parquet file); False when
    another process is building it or it exists. Raises on a file it cannot read or write."""
    directory = data_file.parent
    lock_path = directory / ".rows.lock"
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if RowStore.open(data_file) is not None:
            return False
        shutil.rmtree(directory / FOLDER, ignore_errors=True)  # not of this file, or damaged
        tmp = directory / f".{FOLDER}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            con = duckdb.connect(config={"threads": 1})
            try:
                attach(con, str(data_file), "version")  # either layout (storage.py)
                _write(con, f"version.main.{table}", columns, tmp, _identity(data_file))
            finally:
                con.close()
            tmp.rename(directory / FOLDER)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def _write(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[Column],
           folder: Path, of: list[int]) -> None:  # fmt: skip
    names = [c.name for c in columns]
    types = {c.name: c.type for c in columns}
    numeric = [(i, c) for i, c in enumerate(columns) if c.type in NUMERIC]
    flat = {i: array(NUMERIC[c.type]) for i, c in numeric}
    usable = {i: True for i, _ in numeric}
    offsets = array("q", [0])
    position = 0
    cursor = con.execute(f"SELECT {select_list(names, types)}, rowid FROM {table}")
    dumps = orjson.dumps
    with (folder / "rows.json").open("wb") as out:
        expected = 0
        while batch := cursor.fetchmany(_FETCH):
            parts = []
            for row in batch:
                if row[-1] != expected:
                    raise ValueError("rows did not come in row order")
                expected += 1
                parts.append(dumps(dict(zip(names, row, strict=False))))
                position += len(parts[-1]) + 1
                offsets.append(position)
            out.write(b",".join(parts) + b",")
            for i in flat:
                if usable[i]:
                    values = [row[i] for row in batch]
                    if any(v is None or v != v for v in values):
                        usable[i] = False
                        continue
                    if types[names[i]] == "date":  # ISO text (select_list), years 1-9999
                        try:
                            values = [date.fromisoformat(v).toordinal() for v in values]
                        except (TypeError, ValueError):
                            usable[i] = False
                            continue
                    flat[i].extend(values)
    (folder / "offsets.i64").write_bytes(offsets.tobytes())
    meta: dict[str, object] = {"format": _FORMAT, "of": of, "rows": len(offsets) - 1,
                               "columns": {}}  # fmt: skip
    for i, column in numeric:
        if not usable[i]:
            continue
        values = flat[i]
        monotonic = all(values[j] <= values[j + 1] for j in range(len(values) - 1))
        (folder / f"col-{i}.bin").write_bytes(values.tobytes())
        if not monotonic:  # DuckDB sorts; the rows come back in chunks, never all as objects
            perm, ordered = array("q"), array(values.typecode)
            found = con.execute(
                f"SELECT rowid FROM {table} ORDER BY {sql_ident(column.name)}, rowid"
            )
            while chunk := found.fetchmany(_FETCH):
                start = len(perm)
                perm.extend(row[0] for row in chunk)
                ordered.extend(values[j] for j in perm[start:])
            (folder / f"perm-{i}.bin").write_bytes(perm.tobytes())
            (folder / f"sorted-{i}.bin").write_bytes(ordered.tobytes())
        entry = {"n": i, "code": values.typecode, "monotonic": monotonic,
                 "dates": column.type == "date"}  # fmt: skip
        meta["columns"][column.name] = entry  # type: ignore[index]
    strings = [c.name for c in columns if c.type == "string"]
    meta["plain"] = _plain(con, table, strings)
    cased = [name for name in strings if name not in meta["plain"]]
    meta["cased"] = bool(cased and search.write(con, table, cased, folder, lower=False))
    (folder / "meta.json").write_bytes(orjson.dumps(meta))


def _plain(con: duckdb.DuckDBPyConnection, table: str, strings: list[str]) -> list[str]:
    """The string columns whose every value is ASCII without a capital or a newline: DuckDB's
    `lower` leaves them as they are, and the search files hold them as they are."""
    if not strings:
        return []
    other = r"'[^\x00-\x09\x0B-\x40\x5B-\x7F]'"  # not ASCII, A-Z or a newline
    checks = [f"coalesce(bool_and(NOT regexp_matches({sql_ident(n)}, {other})), true)"
              for n in strings]  # fmt: skip
    found = con.execute(f"SELECT {', '.join(checks)} FROM {table}").fetchone()
    assert found is not None
    return [name for name, plain in zip(strings, found, strict=True) if plain]


class RowStores:
    """Open stores by data file, built in the background on first want; bounded."""

    def __init__(self, max_open: int = 256, min_bytes: int = MIN_BYTES) -> None:
        """`min_bytes`: smaller data files get no store (DuckDB answers them in about a
        millisecond, and thousands of tiny tenants would each cost a build and its files)."""
        self._min_bytes = min_bytes
        self._open: dict[str, RowStore] = {}
        self._retry: dict[str, float] = {}  # not before (monotonic time)
        self._building: set[str] = set()
        self._lock = threading.Lock()
        self._max_open = max_open

    def get(self, data_file: str, columns: Sequence[Column]) -> RowStore | None:
        """The store of `data_file`, or None while it is being built (or cannot be)."""
        store = self._open.get(data_file)
        if store is not None or time.monotonic() < self._retry.get(data_file, 0.0):
            return store
        store = RowStore.open(Path(data_file))
        with self._lock:
            if store is not None:
                if len(self._open) >= self._max_open:
                    self._open.pop(next(iter(self._open)))
                self._open[data_file] = store
                return store
            if data_file in self._building:
                return None
            try:
                small = os.path.getsize(data_file) < self._min_bytes
            except OSError:
                small = True
            if small:
                self._retry[data_file] = float("inf")
                return None
            self._building.add(data_file)
            self._retry[data_file] = float("inf")
        threading.Thread(target=self._build, args=(data_file, tuple(columns)),
                         name="claw402-rowstore", daemon=True).start()  # fmt: skip
        return None

    def _build(self, data_file: str, columns: tuple[Column, ...]) -> None:
        """Build in a child process: a build holds the GIL for seconds per million rows,
        which this process's requests would wait for."""
        wait = 0.0  # built, or another process builds it: look again in a second
        spec = orjson.dumps([data_file, [c.to_dict() for c in columns]])
        try:
            done = subprocess.run([sys.executable, "-m", __name__], input=spec, check=False,
                                  capture_output=True, timeout=3600)  # fmt: skip
            if done.returncode == 3:
                wait = 1.0
            elif done.returncode != 0:
                log.error("building the row store of %s failed: %s", data_file,
                          done.stderr.decode(errors="replace")[-2000:])  # fmt: skip
                wait = 600.0  # no store: the engine answers every query; try much later
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("building the row store of %s failed: %s", data_file, exc)
            wait = 600.0
        finally:
            with self._lock:
                self._building.discard(data_file)
                self._retry[data_file] = time.monotonic() + wait


def main() -> None:
    """`python -m claw402.datasets.rowstore` with `[data file, [columns]]` as JSON on stdin;
    exit status 3 when another process is building it."""
    data_file, columns = orjson.loads(sys.stdin.buffer.read())
    built = build(Path(data_file), [Column.from_dict(c) for c in columns])
    sys.exit(0 if built or RowStore.open(Path(data_file)) else 3)


if __name__ == "__main__":
    main()
