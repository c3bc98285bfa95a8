"""Pages: what a query answers, and the bounded cache of pages of immutable versions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    next: str | None = None

    @property
    def items(self) -> list[dict[str, object]]:
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.rows]


class PageCache:
    """Pages of immutable versions, least recently used first out, bounded by total rows."""

    def __init__(self, max_rows: int) -> None:
        self._max_rows = max_rows
        self._pages: OrderedDict[tuple[object, ...], Page] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> Page | None:
        if self._max_rows <= 0:
            return None
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: tuple[object, ...], page: Page) -> None:
        size = max(1, len(page.rows))
        if size > self._max_rows:
            return
        with self._lock:
            if key in self._pages:
                return
            self._pages[key] = page
            self._rows += size
            while self._rows > self._max_rows:
                _, old = self._pages.popitem(last=False)
                self._rows -= max(1, len(old.rows))
