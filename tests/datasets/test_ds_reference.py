"""Property: paging with the cursor returns exactly what a plain-Python reference computes."""

from __future__ import annotations

import functools
import itertools
import os
from datetime import date, datetime, timedelta
from typing import Any

from dshelpers import write_parquet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claw402.datasets.engine import Engine
from claw402.datasets.ingest import ingest
from claw402.datasets.query import InvalidQuery, parse_query
from claw402.datasets.schema import Column

# Letters whose case mapping Python and DuckDB agree on, plus separators the grammar uses.
ALPHABET = "abcAB é É_-,=\"' \n\x1f"
TYPES = ("integer", "number", "boolean", "string", "date", "timestamp")
VERSION = "v7"
EXAMPLES = int(os.environ.get("DATASETS_EXAMPLES", "50"))

integers = st.integers(min_value=-3, max_value=3) | st.integers(-(2**63), 2**63 - 1)
numbers = st.sampled_from([-1.5, 0.0, 0.1, 2.0, 1e-7, 123456.789]) | st.floats(
    allow_nan=False, allow_infinity=False, width=64
).map(lambda f: f + 0.0)
strings = st.text(ALPHABET, max_size=4)
dates = st.dates(date(1, 1, 1), date(9999, 12, 31)) | st.sampled_from(
    [date(2020, 1, 1), date(2020, 1, 2)]
)
timestamps = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)) | st.sampled_from(
    [datetime(2020, 1, 1), datetime(2020, 1, 1, 0, 0, 0, 500)]
)
VALUES = {
    "integer": integers,
    "number": numbers,
    "boolean": st.booleans(),
    "string": strings,
    "date": dates,
    "timestamp": timestamps,
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[Column], list[tuple[Any, ...]]]:
    kinds = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4))
    columns = [Column(f"c{i}", kind) for i, kind in enumerate(kinds)]  # type: ignore[arg-type]
    row = st.tuples(*(st.none() | VALUES[c.type] for c in columns))
    rows = draw(st.lists(row, max_size=25))
    return columns, rows


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@st.composite
def requests(draw: st.DrawFn, columns: list[Column], rows: list[tuple[Any, ...]]):
    """Random valid parameters; filter values mostly taken from the table so they match."""
    params: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(columns) - 1))
        col = columns[i]
        present = [r[i] for r in rows if r[i] is not None]
        value = draw(st.sampled_from(present) | VALUES[col.type] if present else VALUES[col.type])
        ops = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "isnull"]
        if col.type == "string":
            ops += ["contains", "icontains", "startswith"]
        op = draw(st.sampled_from(ops))
        name = col.name if op == "eq" else f"{col.name}__{op}"
        if op == "isnull":
            params.append((name, draw(st.sampled_from(["true", "false"]))))
        elif op == "in":
            pool = [v for v in [value, *present] if not (isinstance(v, str) and "," in v)]
            items = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3)) if pool else []
            if items:
                params.append((name, ",".join(text(v) for v in items)))
        elif op in ("contains", "icontains", "startswith"):
            assert isinstance(value, str)
            start = draw(st.integers(0, len(value)))
            params.append((name, value[start : start + draw(st.integers(0, 3))]))
        else:
            params.append((name, text(value)))
    if any(c.type == "string" for c in columns) and draw(st.booleans()):
        q = draw(st.text(ALPHABET, min_size=1, max_size=2))
        params.append(("_q", q))
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True))
        params.append(
            ("_sort", ",".join(("-" if draw(st.booleans()) else "") + c.name for c in keys))
        )
    if draw(st.booleans()):
        fields = draw(st.lists(st.sampled_from(columns), min_size=1, unique=True))
        params.append(("_fields", ",".join(c.name for c in fields)))
    params.append(("_limit", str(draw(st.integers(1, 8)))))
    return draw(st.permutations(params))


def matches(op: str, value: Any, arg: Any) -> bool:
    if op == "isnull":
        return (value is None) == arg
    if op == "ne":
        return value is None or value != arg
    if value is None:
        return False
    return {
        "eq": lambda: value == arg,
        "gt": lambda: value > arg,
        "gte": lambda: value >= arg,
        "lt": lambda: value < arg,
        "lte": lambda: value <= arg,
        "in": lambda: value in arg,
        "contains": lambda: arg in value,
        "icontains": lambda: arg.lower() in value.lower(),
        "startswith": lambda: value.startswith(arg),
    }[op]()


def reference(columns, rows, query) -> list[dict[str, Any]]:
    index = {c.name: i for i, c in enumerate(columns)}
    kept = [
        (rowid, row)
        for rowid, row in enumerate(rows)
        if all(matches(f.op, row[index[f.column]], f.value) for f in query.filters)
        and (
            query.q is None
            or any(
                isinstance(v, str) and query.q.lower() in v.lower()
                for v, c in zip(row, columns, strict=True)
                if c.type == "string"
            )
        )
    ]

    def compare(a: tuple[int, tuple], b: tuple[int, tuple]) -> int:
        for key in query.sort:
            x, y = a[1][index[key.column]], b[1][index[key.column]]
            if x == y or (x is None and y is None):
                continue
            # NULL is the largest value.
            larger = x is None or (y is not None and x > y)
            return (-1 if larger else 1) if key.descending else (1 if larger else -1)
        return a[0] - b[0]

    kept.sort(key=functools.cmp_to_key(compare))
    names = list(query.fields or index)
    return [{n: output(row[index[n]]) for n in names} for _, row in kept]


def output(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def walk(dataset, params, columns) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in itertools.count():
        page_params = [*params, ("_cursor", cursor)] if cursor else params
        query = parse_query(page_params, columns, max_limit=8, version=VERSION)
        page = dataset.records(query)
        seen += page.items
        if page.next is None:
            return seen
        assert len(page.rows) == query.limit  # only full pages have a next page
        cursor = page.next
    raise AssertionError("unreachable")


# DATASETS_EXAMPLES=1000 for a deeper search than the suite's default.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), table=tables())
def test_paging_matches_reference(tmp_path_factory, data, table):
    columns, rows = table
    folder = tmp_path_factory.mktemp("ref")
    source = write_parquet(folder / "t.parquet", [(c.name, c.type) for c in columns], rows)
    compact = data.draw(st.booleans())  # both layouts (storage.py) must answer the same
    result = ingest(  # an empty table is a case too
        source, folder / "v", allow_empty=True, compact_rows=len(rows) if compact else -1
    )
    assert result.path.name == ("data.parquet" if compact else "data.duckdb")
    assert result.columns == columns and result.rows == len(rows)
    engine = Engine(cache_rows=0)
    try:
        dataset = engine.open(result.path, result.columns, version=VERSION)
        for _ in range(4):
            params = data.draw(requests(columns, rows))
            query = parse_query(params, columns, max_limit=8, version=VERSION)
            expected = reference(columns, rows, query)
            assert walk(dataset, params, columns) == expected, params
            assert dataset.count(query) == len(expected)
    finally:
        engine.close()


def test_cursor_is_bound_to_query_and_version(tmp_path):
    columns = [Column("n", "integer"), Column("s", "string")]
    rows = [(i % 3, f"s{i}") for i in range(10)]
    result = ingest(
        write_parquet(tmp_path / "t.parquet", [("n", "integer"), ("s", "string")], rows),
        tmp_path / "v",
    )
    engine = Engine()
    dataset = engine.open(result.path, result.columns)
    params = [("_sort", "-n"), ("_limit", "3"), ("n__gte", "1")]
    page = dataset.records(parse_query(params, columns, max_limit=10, version="1"))
    assert page.next
    for other in (
        [("_sort", "n"), ("_limit", "3"), ("n__gte", "1")],
        [("_sort", "-n"), ("_limit", "3"), ("n__gte", "2")],
        [("_sort", "-n"), ("_limit", "3"), ("n__gte", "1"), ("_q", "s")],
    ):
        try:
            parse_query([*other, ("_cursor", page.next)], columns, max_limit=10, version="1")
        except InvalidQuery as exc:
            assert "_cursor" in exc.detail
        else:
            raise AssertionError(f"cursor accepted for {other}")
    try:
        parse_query([*params, ("_cursor", page.next)], columns, max_limit=10, version="2")
    except InvalidQuery:
        pass
    else:
        raise AssertionError("cursor accepted for another version")
    # Page size and projection may change between pages; filter order does not matter.
    reordered = [("n__gte", "1"), ("_fields", "s"), ("_limit", "5"), ("_sort", "-n")]
    nxt = dataset.records(
        parse_query([*reordered, ("_cursor", page.next)], columns, max_limit=10, version="1")
    )
    assert [r["s"] for r in nxt.items] == ["s1", "s4", "s7"] and nxt.next is None
    engine.close()


def test_dates_and_timestamps_keep_their_precision(tmp_path):
    moment = datetime(2024, 2, 29, 23, 59, 59, 1)
    rows = [
        (moment + timedelta(microseconds=i), date(1, 1, 1) + timedelta(days=i)) for i in range(3)
    ]
    result = ingest(
        write_parquet(tmp_path / "t.parquet", [("ts", "timestamp"), ("d", "date")], rows),
        tmp_path / "v",
    )
    engine = Engine()
    dataset = engine.open(result.path, result.columns)
    page = dataset.records(
        parse_query([("_sort", "-ts"), ("_limit", "1")], result.columns, max_limit=10)
    )
    assert page.items == [{"ts": "2024-02-29T23:59:59.000003", "d": "0001-01-03"}]
    engine.close()
