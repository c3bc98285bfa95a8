"""Pages: what a query answers, and the bounded cache of answers of immutable versions.

Why bounded by bytes: a gateway worker caches answers for every tenant it serves, so the
bound must hold however many tenants are touched and whatever their pages weigh; a bound
in rows held 1,000 tenants' 20-row pages or 200 pages of 100 wide rows alike. A JSON
page is kept as its body (a few bytes a value) rather than as Python objects (tens of
bytes a value), so a small default holds one page for each of 10,000 small tenants.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from claw402.datasets.query import Query

_ENTRY = 160  # an OrderedDict slot, the stored pair and the size bookkeeping, per entry


@dataclass(frozen=True)
class Page:
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    next: str | None = None

    @property
    def items(self) -> list[dict[str, object]]:
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.rows]


def page_from_json(columns: tuple[str, ...], body: bytes) -> Page:
    """The page a JSON body (`output.render`) holds: as DuckDB answered it, but for a NaN,
    which JSON writes as null."""
    loaded = orjson.loads(body)
    rows = tuple(tuple(item.get(n) for n in columns) for item in loaded["items"])
    return Page(columns, rows, loaded["next"])


def query_key(query: Query) -> tuple[object, ...]:
    """What a query's page depends on, for a cache keyed by version too."""
    return (
        query.format,
        query.filters,
        query.sort,
        query.fields,
        query.limit,
        query.q,
        query.after,
        query.binding if query.after else None,
    )


def size_of(value: object, depth: int = 4) -> int:
    """Bytes the objects of `value` take (tuples, lists, dicts, dataclasses followed `depth`
    levels); shared objects are counted each time, so this is an upper bound."""
    size = sys.getsizeof(value)
    if depth <= 0 or isinstance(value, (str, bytes, int, float)):
        return size
    if isinstance(value, (tuple, list)):
        return size + sum(size_of(v, depth - 1) for v in value)
    if isinstance(value, dict):
        return size + sum(size_of(k, 0) + size_of(v, depth - 1) for k, v in value.items())
    fields = getattr(value, "__dataclass_fields__", None)
    if fields:
        return size + sum(size_of(getattr(value, f), depth - 1) for f in fields)
    return size


def page_size(page: Page) -> int:
    """`size_of(page)` without walking the column names, shared by every page of a query."""
    return sys.getsizeof(page) + size_of(page.rows, 2) + size_of(page.next, 0)


class PageCache:
    """Answers by key, least recently used first out, bounded by the bytes they take
    (`put` is given the answer's size), and optionally by rows; 0 for either: no cache."""

    def __init__(self, max_bytes: int, max_rows: int | None = None) -> None:
        self.max_bytes = max_bytes if max_rows != 0 else 0
        self._max_rows = max_rows
        self._entries: OrderedDict[tuple[object, ...], tuple[object, int, int]] = OrderedDict()
        self.bytes = 0
        self._rows = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[object, ...]) -> object | None:
        if self.max_bytes <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[object, ...], value: object, size: int, rows: int = 0) -> None:
        """Keep `value` (`size` bytes, `rows` rows) under `key`; one larger than the whole
        cache is not kept."""
        size += size_of(key) + _ENTRY
        rows = max(1, rows)
        if size > self.max_bytes or (self._max_rows is not None and rows > self._max_rows):
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, size, rows)
            self.bytes += size
            self._rows += rows
            while self.bytes > self.max_bytes or (
                self._max_rows is not None and self._rows > self._max_rows
            ):
                _, (_, old_size, old_rows) = self._entries.popitem(last=False)
                self.bytes -= old_size
                self._rows -= old_rows
