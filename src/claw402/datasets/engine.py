"""Run validated queries on ingested datasets: one shared DuckDB instance, files attached on use.

Why this shape (numbers: docs/architecture.md and bench/bench_engine.py):
- One in-memory DuckDB instance for the whole process; each dataset version is ATTACHed under
  an alias (storage.py: a DuckDB file read-only, a small Parquet version loaded in memory) and
  detached when it falls out of a bounded LRU (`max_open`). All datasets share one buffer pool
  (`memory_limit`), one thread pool (`threads`) and one spill folder: the process's budget
  (budget.py) holds however many datasets and tenants it serves.
- One cursor per call (a DuckDB connection on the shared instance): calls run concurrently
  from a thread pool, and a watchdog thread (watchdog.py) interrupts a call past its deadline.
- The SQL comes from sql.py; answers of an immutable version are cached by (version, query)
  up to `cache_bytes` (pages.py): a JSON page as its body, which `page_json` then serves
  without a thread or DuckDB, however many small tenants (no row store) are served.
- Substring filters and `_q` with a needle the search files answer (search.py) first get
  their candidate rows from those files, then DuckDB checks every filter on those rows only
  and fetches them by rowid, which beats its own `contains` over every row. When the search is
  the whole query (`exact_search`), DuckDB only fetches the rows.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import shutil
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from claw402.datasets import indexed
from claw402.datasets.budget import Budget, parse_size, private_temp_directory
from claw402.datasets.cursor import encode_cursor
from claw402.datasets.indexed import SearchUnfinished
from claw402.datasets.output import render
from claw402.datasets.pages import Page, PageCache, page_from_json, page_size, query_key
from claw402.datasets.query import After, InvalidQuery, Query
from claw402.datasets.rowstore import RowStores
from claw402.datasets.schema import Column, sql_ident
from claw402.datasets.search import TextIndex, exact_search, search_plan
from claw402.datasets.sql import (
    candidate_page_sql,
    candidate_rows,
    page_sql,
    select_list,
    where_clause,
)
from claw402.datasets.storage import TABLE, attach
from claw402.datasets.values import convert
from claw402.datasets.watchdog import Watchdog

# Past this many candidate rows, DuckDB's own scan is as cheap as fetching them by rowid.
MAX_CANDIDATES = 2000


class QueryTimeout(Exception):
    """The query ran past its time budget and was interrupted."""


class Engine:
    """Datasets by path, on one DuckDB instance; safe to share between threads."""

    def __init__(
        self,
        *,
        memory_limit: str = Budget.memory_limit,
        threads: int = Budget.threads,
        max_open: int = Budget.max_open,
        cache_bytes: int | str = Budget.cache_bytes,
        cache_rows: int | None = Budget.cache_rows,
        temp_directory: str | None = None,
    ) -> None:
        self._own_temp = temp_directory is None
        self._temp = temp_directory or private_temp_directory()
        if self._own_temp:  # the process's engine is seldom closed: its folder goes at exit
            atexit.register(shutil.rmtree, self._temp, True)
        self._con = duckdb.connect(
            ":memory:",
            config={"memory_limit": memory_limit, "threads": threads, "temp_directory": self._temp},
        )
        self._lock = threading.Lock()
        self._attached: OrderedDict[str, _Attached] = OrderedDict()
        self._aliases: dict[str, str] = {}  # path -> alias, stable across detach and re-attach
        self._ids = itertools.count(1)
        self._max_open = max_open
        if isinstance(cache_bytes, str):
            cache_bytes = parse_size(cache_bytes)
        self._cache = PageCache(cache_bytes, cache_rows)  # 0 for either: no cache
        self._watchdog = Watchdog()
        self._rows = RowStores()  # rendered rows and flat columns per version (indexed.py)

    def open(
        self,
        path: Path | str,
        columns: Sequence[Column | Mapping[str, str]],
        *,
        key: str | None = None,
        version: str | None = None,
    ) -> Dataset:
        """A handle; cheap. The file is attached on first use and may be detached when idle.

        `version`, when given, must match the `version` the queries were parsed with if they
        carry a cursor; parse_query already binds cursors to the version it is given.
        """
        cols = tuple(c if isinstance(c, Column) else Column.from_dict(dict(c)) for c in columns)
        with self._lock:
            alias = self._aliases.setdefault(str(path), f"ds{next(self._ids)}")
        return Dataset(self, str(path), f"{alias}.main.{TABLE}", cols, key, version)

    @property
    def attached(self) -> int:
        return len(self._attached)

    def close(self) -> None:
        self._watchdog.stop()
        with self._lock:
            self._attached.clear()
            self._con.close()
        if self._own_temp:
            shutil.rmtree(self._temp, ignore_errors=True)

    # -- used by Dataset --------------------------------------------------------------------

    def _run(
        self, path: str, sql: str, params: list[object], timeout_ms: int | None
    ) -> list[tuple[object, ...]]:
        entry = self._acquire(path)  # attached until released: never detached mid-query
        try:
            with self._lock:
                cursor = self._con.cursor()
            token = self._watchdog.arm(timeout_ms / 1000, cursor) if timeout_ms else None
            try:
                return cursor.execute(sql, params).fetchall()
            except duckdb.InterruptException:
                raise QueryTimeout(f"query interrupted after {timeout_ms} ms") from None
            finally:
                if token is not None:
                    self._watchdog.disarm(token)
                cursor.close()
        finally:
            self._release(entry)

    def _text_index(self, path: str, *, opened: bool = False) -> TextIndex | None:
        """The search files of `path`, opened on first use (`opened`: else SearchUnfinished);
        None when it has none. Dropped with the attached file (maps stay valid while in use)."""
        if opened:
            if (found := self._attached.get(path)) is None or not found.search_loaded:
                raise SearchUnfinished
            return found.search
        entry = self._acquire(path)
        try:
            if not entry.search_loaded:
                entry.search = TextIndex.open(Path(path).parent)
                entry.search_loaded = True
            return entry.search
        finally:
            self._release(entry)

    def _acquire(self, path: str) -> _Attached:
        with self._lock:
            entry = self._attached.get(path)
            if entry is None:
                alias = self._aliases[path]
                attach(self._con, path, alias)
                entry = self._attached[path] = _Attached(alias)
            else:
                self._attached.move_to_end(path)
            entry.users += 1
            return entry

    def _release(self, entry: _Attached) -> None:
        with self._lock:
            entry.users -= 1
            excess = len(self._attached) - self._max_open
            for path in [p for p, e in self._attached.items() if e.users == 0][: max(0, excess)]:
                self._con.execute(f"DETACH {self._attached.pop(path).alias}")


_default_engine: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The process-wide engine `open_dataset` uses, created on first use with the budget the
    environment sets (`Budget.from_env`: `402claw serve --memory-limit/--open-datasets`)."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = Engine(**Budget.from_env().engine_options())  # type: ignore[arg-type]
        return _default_engine


def open_dataset(
    path: Path | str,
    columns: Sequence[Column | Mapping[str, str]],
    key: str | None = None,
    *,
    version: str | None = None,
) -> Dataset:
    """`default_engine().open(...)`: columns as `Column`s or `{"name", "type"}` dicts."""
    return default_engine().open(path, columns, key=key, version=version)


class Dataset:
    """One version of one dataset: its file, schema and key."""

    def __init__(
        self,
        engine: Engine,
        path: str,
        table: str,
        columns: tuple[Column, ...],
        key: str | None,
        version: str | None,
    ) -> None:
        self._engine = engine
        self.path = path
        self._table = table
        self.columns = columns
        self.key = key
        self.version = version
        self._types = {c.name: c.type for c in columns}
        if key is not None and key not in self._types:
            raise ValueError(f"key {key!r} is not a column")

    def records(self, query: Query, *, timeout_ms: int | None = None) -> Page:
        """One page of rows matching `query`, and the cursor of the next page (None at the end)."""
        if query.after is not None and self.version not in (None, query.version):
            raise InvalidQuery("invalid _cursor: it belongs to another dataset version")
        cache, cache_key = self._engine._cache, (self.path, query_key(query))
        found = cache.get(cache_key)
        if isinstance(found, Page):
            return found
        if isinstance(found, tuple):  # a JSON body (below)
            names = tuple(query.fields or (c.name for c in self.columns))
            return page_from_json(names, found[0])
        page = self._page(query, timeout_ms)
        if query.format == "json":  # what page_json serves next time, in fewer bytes
            # An exact-size copy: orjson's bytes keep its whole write buffer (4 KB or more).
            body = bytes(memoryview(render(page, "json")[0]))
            cache.put(cache_key, (body, len(page.rows)), sys.getsizeof(body) + 64, len(page.rows))
        else:
            cache.put(cache_key, page, page_size(page), len(page.rows))
        return page

    def page_json(
        self, query: Query, *, timeout_ms: int | None = None, inline: bool = False
    ) -> tuple[bytes, int] | None:
        """The page's JSON body and row count from the answers cache or the version's row
        store (indexed.py), without DuckDB; None when `records` must answer. Bounded work unless
        `indexed.searches(query)`; `inline` bounds that too (SearchUnfinished: then ask again
        in a thread, with the query's `timeout_ms`)."""
        if query.after is not None and self.version not in (None, query.version):
            raise InvalidQuery("invalid _cursor: it belongs to another dataset version")
        if query.format == "json" and not (query.count or query.facets):
            found = self._engine._cache.get((self.path, query_key(query)))
            if isinstance(found, tuple):  # a body `records` rendered
                return found  # type: ignore[return-value]
        store = self._engine._rows.get(self.path, self.columns)
        if store is None:
            return None
        if not indexed.searches(query):
            return indexed.answer(store, None, query)
        text = self._engine._text_index(self.path, opened=inline)
        with _search_deadline(timeout_ms) as deadline:
            return indexed.answer(store, text, query, deadline, inline=inline)

    def record(self, key_value: str, *, timeout_ms: int | None = None) -> dict[str, object] | None:
        """The row whose key is `key_value` (text, as in a URL); None when there is none,
        including when the text cannot be a value of the key's type."""
        if self.key is None:
            raise ValueError("this dataset has no key column")
        try:
            value = convert(key_value, Column(self.key, self._types[self.key]))
        except InvalidQuery:
            return None
        names = [c.name for c in self.columns]
        select = select_list(names, self._types)
        sql = f"SELECT {select} FROM {self._table} WHERE {sql_ident(self.key)} = ?"
        rows = self._engine._run(self.path, sql, [value], timeout_ms)
        return dict(zip(names, rows[0], strict=True)) if rows else None

    def count(self, query: Query, *, timeout_ms: int | None = None) -> int:
        """How many rows match the filters and search (cursor, sort and page size ignored)."""
        where, params = where_clause(query, self._types, self.columns)
        table = self._table
        with _search_deadline(timeout_ms) as deadline:
            candidates = self._candidates(query, deadline)
        if candidates == []:
            return 0
        if candidates is not None:
            table, relation_params = candidate_rows(table, candidates)
            params = [*relation_params, *params]
        sql = f"SELECT count(*) FROM {table}{' WHERE ' + where if where else ''}"
        return int(self._engine._run(self.path, sql, params, timeout_ms)[0][0])  # type: ignore[arg-type]

    def _page(self, query: Query, timeout_ms: int | None) -> Page:
        names = list(query.fields or (c.name for c in self.columns))
        extra = [k.column for k in query.sort if k.column not in names]
        with _search_deadline(timeout_ms) as deadline:
            if query.sort:  # every candidate is needed to sort them (none, nothing to fetch)
                candidates = self._candidates(query, deadline)
                rows = candidates and self._fetch(query, candidates, [*names, *extra], timeout_ms)
            else:
                rows = self._stream(query, [*names, *extra], timeout_ms, deadline)
        if rows is None:
            sql, params = page_sql(query, self._table, [*names, *extra], self._types, self.columns)
            rows = self._engine._run(self.path, sql, params, timeout_ms)
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            positions = {name: i for i, name in enumerate([*names, *extra])}
            values = [last[positions[k.column]] for k in query.sort]
            next_cursor = encode_cursor(query.binding, values, last[-1])  # type: ignore[arg-type]
        width = len(names)
        return Page(tuple(names), tuple(row[:width] for row in rows), next_cursor)

    def _fetch(
        self, query: Query, candidates: list[int], names: list[str], timeout_ms: int | None
    ) -> list[tuple[object, ...]]:
        """The page's rows among `candidates` (ascending row ids), each fetched by rowid:
        ~30 µs a row, as DuckDB reads its 2048-row vector."""
        sql, params = candidate_page_sql(
            query, self._table, candidates, names, self._types, self.columns
        )
        return self._engine._run(self.path, sql, params, timeout_ms)

    def _fetch_rows(
        self,
        candidates: list[int],
        names: list[str],
        checks: list[tuple[str, str]],
        timeout_ms: int | None,
    ) -> list[tuple[object, ...]]:
        """Candidates that are the answer (`exact_search`), fetched by rowid alone: no filter
        in the SQL for DuckDB to check again (2.4 against 1.7 ms for 101 rows of 8 columns);
        a case-sensitive `contains` is checked here, on the fetched values."""
        extra = [column for column, _ in checks if column not in names]
        fetched = [*names, *extra]
        sql = (
            f"SELECT {select_list(fetched, self._types)}, rowid FROM {self._table} "
            "WHERE rowid = ANY(?::BIGINT[])"
        )
        rows = self._engine._run(self.path, sql, [candidates], timeout_ms)
        rows.sort(key=lambda row: row[-1])  # type: ignore[arg-type,return-value]
        for column, needle in checks:
            i = fetched.index(column)
            rows = [row for row in rows if isinstance(row[i], str) and needle in row[i]]
        if extra:
            rows = [(*row[: len(names)], row[-1]) for row in rows]
        return rows

    def _stream(
        self, query: Query, names: list[str], timeout_ms: int | None, deadline: float | None
    ) -> list[tuple[object, ...]] | None:
        """A page in source order from the search files, or None when they cannot answer.

        Candidates are read lazily from the cursor on, in chunks of about a page (doubling
        while the filters turn them down), so the scan stops once the page is full. Past
        `MAX_CANDIDATES` turned down, DuckDB scans the rest."""
        search = search_plan(query)
        index = search and self._engine._text_index(self.path)
        if not search or index is None:
            return None
        start = query.after.rowid + 1 if query.after else 0
        found = index.scan(search[0], search[1], start=start, deadline=deadline)
        if found is None:
            return None
        checks = exact_search(query, search[0])
        rows: list[tuple[object, ...]] = []
        size, tried = query.limit + 1, 0
        while len(rows) <= query.limit:
            chunk = found.take(max(size, query.limit + 1 - len(rows)))
            if not chunk:
                break
            rows += (
                self._fetch(query, chunk, names, timeout_ms)
                if checks is None
                else self._fetch_rows(chunk, names, checks, timeout_ms)
            )
            size, tried = size * 2, tried + len(chunk)
            if tried >= MAX_CANDIDATES and len(rows) <= query.limit:
                rest = replace(query, after=After((), chunk[-1]), limit=query.limit - len(rows))
                sql, params = page_sql(rest, self._table, names, self._types, self.columns)
                rows += self._engine._run(self.path, sql, params, timeout_ms)
                break
        return rows

    def _candidates(self, query: Query, deadline: float | None = None) -> list[int] | None:
        """All rows that may match the query's substring filters, from the search files: None
        when they cannot tell (no files, no usable needle, more than `MAX_CANDIDATES`)."""
        search = search_plan(query)
        index = search and self._engine._text_index(self.path)
        if not search or index is None:
            return None
        return index.rows(search[0], search[1], limit=MAX_CANDIDATES, deadline=deadline)


@contextlib.contextmanager
def _search_deadline(timeout_ms: int | None) -> Iterator[float | None]:
    """The search files' deadline for a query's time budget; running past it is QueryTimeout."""
    try:
        yield time.monotonic() + timeout_ms / 1000 if timeout_ms else None
    except TimeoutError:
        raise QueryTimeout(f"query interrupted after {timeout_ms} ms") from None


@dataclass
class _Attached:
    alias: str
    users: int = 0
    search: TextIndex | None = None
    search_loaded: bool = False
