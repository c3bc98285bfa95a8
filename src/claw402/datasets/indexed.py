"""Pages answered from a version's row store (rowstore.py) and search files, without DuckDB.

A query qualifies when its page is JSON of every column, its filters compare flat numeric
or date columns (`eq`, `gt`, `gte`, `lt`, `lte`) or look for a substring the search files
answer (`contains`, `icontains`, `_q`), and it sorts by at most one flat column. The rows
come from the cheapest source: a row range (a sorted key's range, or no filter), the rows of
one column's value range read from its sorted index (one value's rows are in row order
there), the search files' matches, or the sort column's index in order; the other filters
are checked row by row. Past `CAP` rows checked, or for anything else, `answer` returns None
and DuckDB answers: the result is the same, this is only faster (a 100-row keyset page:
microseconds against milliseconds of DuckDB CPU).
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator

import orjson

from claw402.datasets.cursor import encode_cursor
from claw402.datasets.query import Query
from claw402.datasets.rowstore import FlatColumn, RowStore
from claw402.datasets.search import Scan, TextIndex, searchable

CAP = 20_000  # rows checked before DuckDB is left to answer
# What a search may take on the caller's thread (`answer(inline=True)`): most pages take a
# fraction of it; a thread hop would cost about as much as the page.
INLINE_SEARCH = 0.001
SMALL = 5_000  # a value range this small is read whole, then put in row (or sort) order
_CHUNK = 512  # rows checked at a time
_COMPARE = ("eq", "gt", "gte", "lt", "lte")
_PREFIX, _MIDDLE = b'{"ok":true,"items":[', b'],"next":'

Check = Callable[[int], bool]


class SearchUnfinished(Exception):
    """An inline search ran past `INLINE_SEARCH`, or its search files are not open yet: ask
    again off the event loop."""


Source = tuple[TextIndex, str | None, str]  # search files, column (None: any), needle


class _Plan:
    """What a query needs from the store: value ranges by column (positions in its sorted
    order: whole runs of equal values), row checks, a text source."""

    def __init__(self) -> None:
        self.ranges: dict[str, tuple[int, int]] = {}  # positions in the column's sorted order
        self.bounds: list[tuple[memoryview, object, object]] = []  # values, low, high
        self.checks: list[Check] = []
        self.text: Source | None = None
        self.text_checked = False  # the text source's filter can be checked row by row
        self.text_check: Check | None = None  # that check, when not among `checks`


def searches(query: Query) -> bool:
    """Whether the query may scan the search files (unbounded work: give it a thread and a
    deadline); any other query this module answers costs at most `CAP` row checks."""
    return bool(query.q) or any(f.op in ("contains", "icontains") for f in query.filters)


def answer(
    store: RowStore,
    text: TextIndex | None,
    query: Query,
    deadline: float | None = None,
    *,
    inline: bool = False,
) -> tuple[bytes, int] | None:
    """The JSON body of the query's page and its row count (what a row-priced call pays for),
    or None when this module does not answer it (`_count`/`_facet` need DuckDB).
    Past `deadline` (monotonic time) a search raises TimeoutError; `inline`, past
    `INLINE_SEARCH` from now, SearchUnfinished."""
    if not inline:
        return _answer(store, text, query, deadline)
    try:
        return _answer(store, text, query, time.monotonic() + INLINE_SEARCH)
    except TimeoutError:
        raise SearchUnfinished from None


def _answer(
    store: RowStore, text: TextIndex | None, query: Query, deadline: float | None
) -> tuple[bytes, int] | None:
    if query.format != "json" or query.fields is not None or len(query.sort) > 1:
        return None
    if query.count or query.facets:
        return None
    plan = _plan(store, text, query)
    if plan is None:
        return None
    if query.sort:
        found = _sorted_page(store, plan, query)
    else:
        found = _row_order_page(store, plan, query, deadline)
    if found is None:
        return None
    body, rows, value = found
    nxt = b"null"
    if len(rows) > query.limit:
        last = rows[query.limit - 1]
        values = [] if value is None else [value(last)]
        nxt = orjson.dumps(encode_cursor(query.binding, values, last))
    page = b"".join((_PREFIX, body(query.limit), _MIDDLE, nxt, b"}"))
    return page, min(len(rows), query.limit)


def _plan(store: RowStore, text: TextIndex | None, query: Query) -> _Plan | None:
    plan = _Plan()
    sources: list[tuple[Source, Check | None]] = []  # exact sources; a check: may be one
    for f in query.filters:
        flat = store.columns.get(f.column)
        if f.op in _COMPARE and flat is not None:
            lo, hi = plan.ranges.get(f.column, (0, store.rows))
            flo, fhi = _positions(flat, f.op, flat.stored(f.value))
            plan.ranges[f.column] = (max(lo, flo), min(hi, fhi))
        elif f.op in ("contains", "icontains") and text is not None:
            needle = searchable(f.value)  # type: ignore[arg-type]
            if needle is None:
                return None
            if f.op == "icontains":  # exact only as the source
                sources.append(((text, f.column, needle), None))
                continue
            check = _contains_check(store, f.column, str(f.value))
            as_is = store.text_as_is(f.column, text)
            if as_is is not None:  # the value's own text: exact
                sources.append(((as_is, f.column, str(f.value)), check))
            elif plan.text is None:  # lowered: a superset, each row checked for case
                plan.text, plan.text_checked = (text, f.column, needle), True
            plan.checks.append(check)
        else:
            return None
    for name, (lo, hi) in plan.ranges.items():  # whole runs of equal values: two bounds
        if lo < hi:
            flat = store.columns[name]
            plan.bounds.append((flat.values, flat.sorted[lo], flat.sorted[hi - 1]))
    if query.q:
        needle = searchable(query.q)
        if needle is None or text is None:
            return None
        sources.append(((text, None, needle), None))
    unchecked = [source for source, check in sources if check is None]
    if len(unchecked) > 1:
        return None  # two sources that cannot be checked row by row
    if unchecked or sources:
        source, check = (unchecked[0], None) if unchecked else sources[0]
        plan.text, plan.text_checked = source, check is not None
        if check is not None:  # the source answers it exactly: checked only without it
            plan.checks.remove(check)
            plan.text_check = check
    return plan


def _positions(flat: FlatColumn, op: str, value: object) -> tuple[int, int]:
    ordered, n = flat.sorted, len(flat.sorted)
    if op == "eq":
        return bisect_left(ordered, value), bisect_right(ordered, value)  # type: ignore[call-overload]
    if op == "gt":
        return bisect_right(ordered, value), n  # type: ignore[call-overload]
    if op == "gte":
        return bisect_left(ordered, value), n  # type: ignore[call-overload]
    if op == "lt":
        return 0, bisect_left(ordered, value)  # type: ignore[call-overload]
    return 0, bisect_right(ordered, value)  # type: ignore[call-overload]


def _contains_check(store: RowStore, column: str, needle: str) -> Check:
    def check(row: int) -> bool:
        value = orjson.loads(store.row(row)).get(column)
        return isinstance(value, str) and needle in value

    return check


Found = tuple[Callable[[int], bytes], list[int], Callable[[int], object] | None]


def _row_order_page(
    store: RowStore, plan: _Plan, query: Query, deadline: float | None
) -> Found | None:
    start = query.after.rowid + 1 if query.after else 0
    want = query.limit + 1
    lo, hi = start, store.rows
    small: list[int] | None = None
    single: memoryview | None = None  # the rows of one value: in row order in `perm`
    for name, (plo, phi) in plan.ranges.items():
        flat = store.columns[name]
        if flat.monotonic:  # a sorted key: its value range is a row range
            lo, hi = max(lo, plo), min(hi, phi)
        elif phi - plo <= SMALL and (small is None or phi - plo < len(small)):
            small = sorted(flat.perm[plo:phi])  # type: ignore[index]
        elif (
            plo < phi
            and flat.sorted[plo] == flat.sorted[phi - 1]
            and (single is None or phi - plo < len(single))
        ):
            single = flat.perm[plo:phi]  # type: ignore[index]
    if lo >= hi or any(a >= b for a, b in plan.ranges.values()):
        return _rows(store, [])
    fewest = min(hi - lo, len(small) if small is not None else hi - lo)
    chunks: Iterable[list[int]]
    if plan.text is not None and plan.text_checked and fewest <= SMALL:  # check a few rows
        if plan.text_check is not None:
            plan.checks.append(plan.text_check)
    elif plan.text is not None:
        index, column, needle = plan.text
        scan = index.scan(column, needle, start=lo, stop=hi, deadline=deadline)
        if scan is None:
            return None
        if not plan.checks and not plan.bounds:  # every match is a row of the page
            return _rows(store, scan.take(want))
        chunks = _growing(scan, want)
        rows = _take(chunks, plan, want)
        return None if rows is None else _rows(store, rows)
    if small is not None and len(small) < hi - lo:
        chunks = [[r for r in small if lo <= r < hi]]
    elif single is not None and small is None and len(single) < hi - lo:
        rows_of = single  # an equality matching many rows: read them from the cursor on
        first = bisect_left(rows_of, lo)  # type: ignore[call-overload]
        chunks = (
            [r for r in rows_of[a : a + _CHUNK].tolist() if r < hi]
            for a in range(first, len(rows_of), _CHUNK)
        )
    elif not plan.checks and all(store.columns[n].monotonic for n in plan.ranges):
        end = min(hi, lo + want)  # every row in the range matches: one slice
        return (lambda n: store.slice(lo, min(end, lo + n))), list(range(lo, end)), None
    else:
        chunks = (list(range(a, min(hi, a + _CHUNK))) for a in range(lo, hi, _CHUNK))
    rows = _take(chunks, plan, want)
    return None if rows is None else _rows(store, rows)


def _growing(scan: Scan, first: int) -> Iterator[list[int]]:
    """The scan's rows in runs of `first`, then twice as many each time (up to `_CHUNK`)."""
    size = first
    while run := scan.take(size):
        yield run
        size = min(_CHUNK, size * 2)


def _passing(chunk: list[int], plan: _Plan) -> list[int]:
    for values, low, high in plan.bounds:
        chunk = [r for r in chunk if low <= values[r] <= high]  # type: ignore[operator]
    for check in plan.checks:
        chunk = [r for r in chunk if check(r)]
    return chunk


def _take(chunks: Iterable[list[int]], plan: _Plan, want: int) -> list[int] | None:
    """The first `want` candidates every filter passes; None past `CAP` candidates."""
    rows: list[int] = []
    tried = 0
    for chunk in chunks:
        rows += _passing(chunk, plan)
        if len(rows) >= want:
            return rows[:want]
        tried += len(chunk)
        if tried >= CAP:
            return None
    return rows


def _rows(store: RowStore, rows: list[int], value: Callable[[int], object] | None = None) -> Found:
    return (lambda n: store.join(rows[:n])), rows, value


def _sorted_page(store: RowStore, plan: _Plan, query: Query) -> Found | None:
    key = query.sort[0]
    flat = store.columns.get(key.column)
    if flat is None or plan.text is not None:
        return None
    values = flat.values
    after = query.after
    if after is not None and (after.values[0] is None or isinstance(after.values[0], bool)):
        return None
    mark_value = flat.stored(after.values[0]) if after is not None else None
    want = query.limit + 1
    best = min(plan.ranges.items(), key=lambda kv: kv[1][1] - kv[1][0], default=None)
    if best is not None and best[1][1] - best[1][0] <= SMALL:  # few rows: sort them here
        name, (plo, phi) = best
        column = store.columns[name]
        pool = list(range(plo, phi)) if column.monotonic else column.perm[plo:phi].tolist()  # type: ignore[union-attr]
        sign = -1 if key.descending else 1
        order = sorted(_passing(pool, plan), key=lambda r: (sign * values[r], r))  # type: ignore[operator]
        if after is not None:
            mark = (sign * mark_value, after.rowid)  # type: ignore[operator]
            order = [r for r in order if (sign * values[r], r) > mark]  # type: ignore[operator]
        return _rows(store, order[:want], flat.shown)
    ordered = _in_order(flat, key.descending, mark_value, after.rowid if after else -1)
    rows = _take(ordered, plan, want)
    return None if rows is None else _rows(store, rows, flat.shown)


def _in_order(flat: FlatColumn, descending: bool, value: object, after: int) -> Iterator[list[int]]:
    """Rows in chunks, in (value, row) order, or by value descending then row ascending;
    after the cursor's (value, row) when `value` is not None."""
    ordered, n = flat.sorted, len(flat.sorted)

    def rows(a: int, b: int) -> list[int]:
        return list(range(a, b)) if flat.perm is None else flat.perm[a:b].tolist()

    if not descending:
        i = 0 if value is None else bisect_left(ordered, value)  # type: ignore[call-overload]
        if value is not None:
            j = bisect_right(ordered, value)  # type: ignore[call-overload]
            yield [r for r in rows(i, j) if r > after]
            i = j
        for a in range(i, n, _CHUNK):
            yield rows(a, min(n, a + _CHUNK))
        return
    hi = n if value is None else bisect_right(ordered, value)  # type: ignore[call-overload]
    while hi > 0:
        v = ordered[hi - 1]
        lo = bisect_left(ordered, v, 0, hi)
        at_cursor = value is not None and v == value  # the cursor's value: rows after it
        for a in range(lo, hi, _CHUNK):
            chunk = rows(a, min(hi, a + _CHUNK))
            yield [r for r in chunk if r > after] if at_cursor else chunk
        hi = lo
