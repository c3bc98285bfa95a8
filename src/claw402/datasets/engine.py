"""Run validated queries on ingested datasets: one shared DuckDB instance, files attached on use.

bench/bench_engine.py, 1M rows / 100 MB CSV, 2 cores, in-process, uncached medians (this
machine's speed drifts ~30% between runs): first page 0.9-1.5 ms (0.1 ms from the page cache),
equality on an unindexed column 1.4-2.0 ms, range + sort + 100 rows 6.7-8.8 ms, a 3-word
substring 6.9-7.8 ms (3 ms when nothing matches), record by key 0.9 ms.

Why this shape:
- One in-memory DuckDB instance for the whole process; each dataset file is ATTACHed read-only
  under an alias and detached when it falls out of a bounded LRU. All datasets share one buffer
  pool (`memory_limit`) and one thread pool (`threads`), so thousands of tenants cost what their
  hot blocks cost, and opening is an ATTACH (~1 ms).
- One cursor per call (a DuckDB connection on the shared instance): calls run concurrently
  from a thread pool, and a watchdog thread interrupts a call past its deadline.
- Pages in source order never ORDER BY: the table is stored in source order and DuckDB keeps
  insertion order, so `WHERE ... AND rowid > ? LIMIT n` stops scanning after n matches. The
  unfiltered page is a `rowid BETWEEN` range that reads one row group. A sorted page is a top-N
  on (sort columns, rowid) after a keyset predicate, computed over the filter and sort columns
  only; the page's rows are then fetched by rowid (late materialisation). NULLs sort as the
  largest value.
- Dates and timestamps leave DuckDB as ISO text (JSON-ready, any year, no Python datetimes).
- Pages of an immutable version are cached by (version, query) up to `cache_rows` rows.
- Substring filters and `_q` with a needle the search files answer (search.py) first get
  their candidate rows from those files, then DuckDB checks every filter on those rows only
  and fetches them by rowid: 3-4x faster than its own `contains` over every row. When the
  search is the whole query (`_exact_search`), DuckDB only fetches the rows (~1 ms less).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from claw402.datasets.query import (
    After,
    InvalidQuery,
    Query,
    Sort,
    Value,
    convert,
    encode_cursor,
)
from claw402.datasets.schema import Column, sql_ident
from claw402.datasets.search import TextIndex, searchable

TABLE = "data"
# Past this many candidate rows, DuckDB's own scan is as cheap as fetching them by rowid (1M
# rows of 8 columns: 200 random rows 4.6 ms, 2,000 12 ms; a sorted scan 11-25 ms by needle).
MAX_CANDIDATES = 2000
_DENSE = 64  # candidates this close (one row in _DENSE) are fetched as their rowid range
_REINTERRUPT_S = 0.005
_DATE_SQL = "CAST({c} AS VARCHAR)"  # ISO for years 1-9999, all ingest keeps; cheapest form
_TIMESTAMP_SQL = (
    "CASE WHEN microsecond({c}) % 1000000 = 0 THEN strftime({c}, '%Y-%m-%dT%H:%M:%S') "
    "ELSE strftime({c}, '%Y-%m-%dT%H:%M:%S.%f') END"
)


class QueryTimeout(Exception):
    """The query ran past its time budget and was interrupted."""


@dataclass(frozen=True)
class Page:
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    next: str | None = None

    @property
    def items(self) -> list[dict[str, object]]:
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.rows]


class Engine:
    """Datasets by path, on one DuckDB instance; safe to share between threads."""

    def __init__(
        self,
        *,
        memory_limit: str = "1GB",
        threads: int = 2,
        max_open: int = 64,
        cache_rows: int = 20_000,
    ) -> None:
        self._con = duckdb.connect(
            ":memory:", config={"memory_limit": memory_limit, "threads": threads}
        )
        self._lock = threading.Lock()
        self._attached: OrderedDict[str, _Attached] = OrderedDict()
        self._aliases: dict[str, str] = {}  # path -> alias, stable across detach and re-attach
        self._ids = itertools.count(1)
        self._max_open = max_open
        self._cache = _PageCache(cache_rows)
        self._watchdog = _Watchdog()

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

    def _text_index(self, path: str) -> TextIndex | None:
        """The search files of the dataset at `path`, opened on first use; None when it has
        none. They are dropped with the attached file (their maps stay valid while in use)."""
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
                literal = path.replace("'", "''")
                try:
                    self._con.execute(f"ATTACH '{literal}' AS {alias} (READ_ONLY)")
                except duckdb.IOException as exc:
                    raise FileNotFoundError(f"cannot open dataset file {path}: {exc}") from None
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
    """The process-wide engine `open_dataset` uses, created on first use."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = Engine()
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
        cache_key = (self.path, _query_key(query))
        page = self._engine._cache.get(cache_key)
        if page is None:
            page = self._page(query, timeout_ms)
            self._engine._cache.put(cache_key, page)
        return page

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
        select = _select(names, self._types)
        sql = f"SELECT {select} FROM {self._table} WHERE {sql_ident(self.key)} = ?"
        rows = self._engine._run(self.path, sql, [value], timeout_ms)
        return dict(zip(names, rows[0], strict=True)) if rows else None

    def count(self, query: Query, *, timeout_ms: int | None = None) -> int:
        """How many rows match the filters and search (cursor, sort and page size ignored)."""
        where, params = _where(query, self._types, self.columns)
        table = self._table
        with _search_deadline(timeout_ms) as deadline:
            candidates = self._candidates(query, deadline)
        if candidates == []:
            return 0
        if candidates is not None:
            table, relation_params = _candidate_rows(table, candidates)
            params = [*relation_params, *params]
        sql = f"SELECT count(*) FROM {table}{' WHERE ' + where if where else ''}"
        return int(self._engine._run(self.path, sql, params, timeout_ms)[0][0])  # type: ignore[arg-type]

    def _page(self, query: Query, timeout_ms: int | None) -> Page:
        names = list(query.fields or (c.name for c in self.columns))
        extra = [k.column for k in query.sort if k.column not in names]
        with _search_deadline(timeout_ms) as deadline:
            if query.sort:  # every candidate is needed to sort them
                candidates = self._candidates(query, deadline)
                rows = None if candidates is None else (
                    self._fetch(query, candidates, [*names, *extra], timeout_ms)
                    if candidates else []
                )
            else:
                rows = self._stream(query, [*names, *extra], timeout_ms, deadline)
        if rows is None:
            sql, params = _page_sql(
                query, self._table, [*names, *extra], self._types, self.columns
            )
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
        sql, params = _candidate_page_sql(
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
        """Candidates that are the answer (`_exact_search`), fetched by rowid alone: no filter
        in the SQL for DuckDB to check again (2.4 against 1.7 ms for 101 rows of 8 columns);
        a case-sensitive `contains` is checked here, on the fetched values."""
        extra = [column for column, _ in checks if column not in names]
        fetched = [*names, *extra]
        sql = (
            f"SELECT {_select(fetched, self._types)}, rowid FROM {self._table} "
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
        search = self._search_plan(query)
        index = search and self._engine._text_index(self.path)
        if not search or index is None:
            return None
        start = query.after.rowid + 1 if query.after else 0
        found = index.iter_rows(search[0], search[1], start=start, deadline=deadline)
        if found is None:
            return None
        checks = _exact_search(query, search[0])
        rows: list[tuple[object, ...]] = []
        size, tried = query.limit + 1, 0
        while len(rows) <= query.limit:
            chunk = list(itertools.islice(found, max(size, query.limit + 1 - len(rows))))
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
                sql, params = _page_sql(rest, self._table, names, self._types, self.columns)
                rows += self._engine._run(self.path, sql, params, timeout_ms)
                break
        return rows

    def _candidates(self, query: Query, deadline: float | None = None) -> list[int] | None:
        """All rows that may match the query's substring filters, from the search files: None
        when they cannot tell (no files, no usable needle, more than `MAX_CANDIDATES`)."""
        search = self._search_plan(query)
        index = search and self._engine._text_index(self.path)
        if not search or index is None:
            return None
        return index.rows(search[0], search[1], limit=MAX_CANDIDATES, deadline=deadline)

    @staticmethod
    def _search_plan(query: Query) -> tuple[str | None, str] | None:
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


def _exact_search(query: Query, column: str | None) -> list[tuple[str, str]] | None:
    """Whether the search files' rows for (`column`, needle) are the query's answer: the
    case-sensitive `(column, value)` checks left to make on them, or None when other filters
    must be checked too. `_q` and `__icontains` with a searchable needle are exact (see
    search.py); `__contains` is exact up to case."""
    if column is None:  # `_q` was chosen: no column filter can narrow it
        return [] if not query.filters else None
    if query.q or len(query.filters) != 1:
        return None
    only = query.filters[0]  # the filter `_search_plan` chose: contains or icontains
    return [(only.column, str(only.value))] if only.op == "contains" else []


@contextlib.contextmanager
def _search_deadline(timeout_ms: int | None) -> Iterator[float | None]:
    """The search files' deadline for a query's time budget; running past it is QueryTimeout."""
    try:
        yield time.monotonic() + timeout_ms / 1000 if timeout_ms else None
    except TimeoutError:
        raise QueryTimeout(f"query interrupted after {timeout_ms} ms") from None


# ---- SQL ---------------------------------------------------------------------------------

def _candidate_rows(table: str, candidates: list[int]) -> tuple[str, list[object]]:
    """The rows a search's candidates (ascending) may be among, as a relation with `_rid`.

    Sparse: the candidates themselves; LIMIT keeps the outer filters out of the scan, so
    DuckDB checks them on the candidates and not on every row, and the bounds let zonemaps
    skip the row groups outside the candidates' range. Dense (at least one row in
    `_DENSE` a candidate): the whole range, which costs less than planning the list join
    (~1.5 against ~3 ms for 101 rows here). Either way the query's own filters decide.
    """
    first, last = candidates[0], candidates[-1]
    if last - first < _DENSE * len(candidates):
        return f"(SELECT *, rowid AS _rid FROM {table} WHERE rowid BETWEEN ? AND ?)", [first, last]
    return (
        f"(SELECT *, rowid AS _rid FROM {table} WHERE rowid BETWEEN ? AND ? "
        "AND rowid = ANY(?::BIGINT[]) LIMIT 9223372036854775807)",
        [first, last, candidates],
    )




def _page_sql(
    query: Query,
    table: str,
    names: Sequence[str],
    types: dict[str, str],
    columns: Sequence[Column],
) -> tuple[str, list[object]]:
    """SQL for one page plus one row (to know whether a next page exists); rowid comes last."""
    select = _select(names, types) + ", rowid"
    where, params = _where(query, types, columns)
    after = query.after
    if not query.sort and not where:
        # Nothing to filter: the page is a rowid range, and zonemaps read one row group.
        start = after.rowid + 1 if after else 0
        sql = f"SELECT {select} FROM {table} WHERE rowid BETWEEN ? AND ?"
        return sql, [start, start + query.limit]
    if not query.sort:
        # Source order without ORDER BY: the scan stops after limit + 1 matches.
        if after is not None:
            where += " AND rowid > ?"
            params.append(after.rowid)
        return f"SELECT {select} FROM {table} WHERE {where} LIMIT ?", [*params, query.limit + 1]
    if after is not None:
        where = _and_keyset(where, params, query.sort, after)
    order = _order_by(query.sort)
    # Late materialisation: the top-N reads only filter and sort columns, then the page's
    # rows are fetched by rowid (measured 12 ms against 16 ms for a plain top-N).
    return (
        f"SELECT {select} FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
        f"{' WHERE ' + where if where else ''} ORDER BY {order} LIMIT ?) ORDER BY {order}",
        [*params, query.limit + 1],
    )


def _candidate_page_sql(
    query: Query,
    table: str,
    candidates: list[int],
    names: Sequence[str],
    types: dict[str, str],
    columns: Sequence[Column],
) -> tuple[str, list[object]]:
    """`_page_sql` over the candidate rows of a search: few rows, so one plain ORDER BY."""
    relation, relation_params = _candidate_rows(table, candidates)
    where, params = _where(query, types, columns)
    params = [*relation_params, *params]
    after = query.after
    if after is not None and not query.sort:
        where = f"{where} AND _rid > ?" if where else "_rid > ?"
        params.append(after.rowid)
    elif after is not None:
        where = _and_keyset(where, params, query.sort, after, rowid="_rid")
    order = _order_by(query.sort, rowid="_rid")
    return (
        f"SELECT {_select(names, types)}, _rid FROM {relation}"
        f"{' WHERE ' + where if where else ''} ORDER BY {order} LIMIT ?",
        [*params, query.limit + 1],
    )


def _order_by(sort: Sequence[Sort], rowid: str = "rowid") -> str:
    """The page order: the sort keys (NULLs as the largest value), then the row number."""
    return "".join(
        f"{sql_ident(k.column)} {'DESC NULLS FIRST' if k.descending else 'ASC NULLS LAST'}, "
        for k in sort
    ) + rowid


def _and_keyset(
    where: str, params: list[object], sort: Sequence[Sort], after: After, rowid: str = "rowid"
) -> str:
    """`where` narrowed to the rows after the cursor; the keyset's values join `params`."""
    keyset, keyset_params = _keyset(sort, after.values, after.rowid, rowid=rowid)
    params += keyset_params
    return f"{where} AND {keyset}" if where else keyset


def _select(names: Sequence[str], types: dict[str, str]) -> str:
    parts = []
    for name in names:
        col = sql_ident(name)
        if types[name] == "date":
            parts.append(_DATE_SQL.format(c=col))
        elif types[name] == "timestamp":
            parts.append(_TIMESTAMP_SQL.format(c=col))
        else:
            parts.append(col)
    return ", ".join(parts)


_COMPARE = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _where(
    query: Query, types: dict[str, str], columns: Sequence[Column]
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for f in query.filters:
        col = sql_ident(f.column)
        if f.op in _COMPARE:
            clauses.append(f"{col} {_COMPARE[f.op]} ?")
            params.append(f.value)
        elif f.op == "ne":
            clauses.append(f"{col} IS DISTINCT FROM ?")
            params.append(f.value)
        elif f.op == "contains":
            clauses.append(f"contains({col}, ?)")
            params.append(f.value)
        elif f.op == "icontains":
            clauses.append(f"contains(lower({col}), lower(?))")
            params.append(f.value)
        elif f.op == "startswith":
            clauses.append(f"starts_with({col}, ?)")
            params.append(f.value)
        elif f.op == "in":
            values = f.value if isinstance(f.value, tuple) else (f.value,)
            clauses.append(f"{col} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        elif f.op == "isnull":
            clauses.append(f"{col} IS {'' if f.value else 'NOT '}NULL")
        else:  # parse_query never produces another operator
            raise InvalidQuery(f"unknown operator {f.op!r}")
    if query.q:
        strings = [sql_ident(c.name) for c in columns if c.type == "string"]
        clauses.append(
            "(" + " OR ".join(f"contains(lower({s}), lower(?))" for s in strings) + ")"
        )
        params.extend([query.q] * len(strings))
    return " AND ".join(clauses), params


def _keyset(
    sort: Sequence[Sort], values: Sequence[Value | None], after: int, *, rowid: str = "rowid"
) -> tuple[str, list[object]]:
    """Rows after (values, rowid) in the order (sort..., rowid); NULL is the largest value."""
    branches: list[str] = []
    params: list[object] = []
    prefix: list[str] = []
    prefix_params: list[object] = []
    for key, value in zip(sort, values, strict=True):
        col = sql_ident(key.column)
        beyond: str | None
        beyond_params: list[object] = []
        if key.descending:
            beyond = f"{col} IS NOT NULL" if value is None else f"{col} < ?"
            beyond_params = [] if value is None else [value]
        else:
            beyond = None if value is None else f"({col} > ? OR {col} IS NULL)"
            beyond_params = [] if value is None else [value]
        if beyond is not None:
            branches.append(" AND ".join([*prefix, beyond]))
            params += prefix_params + beyond_params
        prefix.append(f"{col} IS NULL" if value is None else f"{col} = ?")
        prefix_params += [] if value is None else [value]
    branches.append(" AND ".join([*prefix, f"{rowid} > ?"]))
    params += [*prefix_params, after]
    clause = "(" + " OR ".join(f"({b})" for b in branches) + ")"
    # A redundant bound on the first key that DuckDB can push into the scan (zonemaps).
    first, first_value = sort[0], values[0]
    col = sql_ident(first.column)
    if first.descending and first_value is not None:
        clause = f"{col} <= ? AND {clause}"
        params.insert(0, first_value)
    elif not first.descending and first_value is None:
        clause = f"{col} IS NULL AND {clause}"
    return clause, params


def _query_key(query: Query) -> tuple[object, ...]:
    return (query.filters, query.sort, query.fields, query.limit, query.q, query.after,
            query.binding if query.after else None)


# ---- plumbing ----------------------------------------------------------------------------

@dataclass
class _Attached:
    alias: str
    users: int = 0
    search: TextIndex | None = None
    search_loaded: bool = False


class _PageCache:
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


@dataclass(order=True)
class _Deadline:
    at: float
    token: int
    cursor: duckdb.DuckDBPyConnection = field(compare=False)


class _Watchdog:
    """One thread interrupting cursors whose deadline passed (a Timer per query costs more)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Deadline] = []
        self._armed: set[int] = set()
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopped = False

    def arm(self, seconds: float, cursor: duckdb.DuckDBPyConnection) -> int:
        with self._cond:
            token = next(self._tokens)
            self._armed.add(token)
            heapq.heappush(self._heap, _Deadline(time.monotonic() + seconds, token, cursor))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="duckdb-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.discard(token)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while not self._stopped:
                while self._heap and self._heap[0].token not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                # Interrupt, and again every few ms until the call disarms: an interrupt that
                # lands before DuckDB starts executing is otherwise lost.
                deadline = heapq.heapreplace(
                    self._heap,
                    _Deadline(time.monotonic() + _REINTERRUPT_S, self._heap[0].token,
                              self._heap[0].cursor),
                )
                with contextlib.suppress(duckdb.Error):
                    deadline.cursor.interrupt()
