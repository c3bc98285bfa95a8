"""The grammar: what it accepts, what it refuses and how it says so; it never raises else."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claw402.datasets.cursor import encode_cursor
from claw402.datasets.query import (
    After,
    Filter,
    InvalidQuery,
    Sort,
    format_from_accept,
    parse_query,
)
from claw402.datasets.schema import Column

COLUMNS = [
    Column("id", "integer"),
    Column("price", "number"),
    Column("ok", "boolean"),
    Column("name", "string"),
    Column("day", "date"),
    Column("at", "timestamp"),
]


def parse(*params: tuple[str, str], **kw):
    return parse_query(list(params), COLUMNS, max_limit=kw.pop("max_limit", 500), **kw)


def refused(*params: tuple[str, str], **kw) -> str:
    with pytest.raises(InvalidQuery) as info:
        parse(*params, **kw)
    return info.value.detail


def test_defaults():
    q = parse()
    assert (q.filters, q.sort, q.fields, q.limit, q.q, q.format, q.after) == (
        (),
        (),
        None,
        100,
        None,
        "json",
        None,
    )
    assert parse(max_limit=20).limit == 20
    assert parse_query([], COLUMNS, max_limit=500, default_limit=7).limit == 7


def test_filters_are_typed():
    q = parse(
        ("id", "7"),
        ("price__gte", "-1.5e2"),
        ("ok", "TRUE"),
        ("name__icontains", "Ab"),
        ("day__lt", "2024-02-29"),
        ("at__gt", "2024-01-01T10:00:00+02:00"),
        ("id__in", "1,2,3"),
        ("name__isnull", "false"),
        ("name__ne", ""),
    )
    assert q.filters == (
        Filter("id", "eq", 7),
        Filter("price", "gte", -150.0),
        Filter("ok", "eq", True),
        Filter("name", "icontains", "Ab"),
        Filter("day", "lt", date(2024, 2, 29)),
        Filter("at", "gt", datetime(2024, 1, 1, 8, 0)),
        Filter("id", "in", (1, 2, 3)),
        Filter("name", "isnull", False),
        Filter("name", "ne", ""),
    )
    assert parse(("at__gte", "2024-01-01")).filters[0].value == datetime(2024, 1, 1)
    assert parse(("at", "2024-01-01 10:00:00.5Z")).filters[0].value == datetime(
        2024, 1, 1, 10, 0, 0, 500000
    )
    assert parse(("name__in", "a,,b")).filters[0].value == ("a", "", "b")
    assert parse(("ok", "0")).filters[0].value is False


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ([("nope", "1")], ["unknown column 'nope'", "id, price"]),
        ([("id__between", "1")], ["unknown operator 'between'"]),
        ([("id__eq", "1")], ["unknown operator 'eq'"]),
        ([("id", "abc")], ["'id' is an integer column", "'abc'"]),
        ([("id", "1.5")], ["integer"]),
        ([("id", "99999999999999999999")], ["64 bits"]),
        ([("price", "nan")], ["number"]),
        ([("price", "1e999")], ["finite"]),
        ([("ok", "maybe")], ["boolean", "true, false"]),
        ([("day", "2024-02-30")], ["YYYY-MM-DD"]),
        ([("day", "20240101")], ["date"]),
        ([("at", "yesterday")], ["timestamp"]),
        ([("id__contains", "1")], ["string columns only", "'id' is integer"]),
        ([("name__isnull", "yes")], ["true or false"]),
        ([("id__in", "1,x")], ["'x'"]),
        ([("_sort", "nope")], ["_sort", "unknown column 'nope'"]),
        ([("_sort", "id,-id")], ["twice"]),
        ([("_sort", "")], ["unknown column ''"]),
        ([("_fields", "id,nope")], ["_fields", "'nope'"]),
        ([("_fields", "id,id")], ["twice"]),
        ([("_limit", "0")], ["at least 1"]),
        ([("_limit", "-1")], ["whole number"]),
        ([("_limit", "ten")], ["whole number"]),
        ([("_format", "xml")], ["json, csv, ndjson"]),
        ([("_bogus", "1")], ["unknown parameter '_bogus'", "_sort"]),
        ([("_limit", "1"), ("_limit", "2")], ["more than once"]),
        ([("_cursor", "garbage")], ["invalid _cursor"]),
        ([("_q", "x" * 501)], ["too long"]),
        ([("name", "\udcff")], ["UTF-8"]),
    ],
)
def test_refusals_say_what_is_wrong(params, words):
    detail = refused(*params)
    for word in words:
        assert word in detail


def test_limit_is_clamped_and_format_defaults():
    assert parse(("_limit", "100000")).limit == 500
    assert parse(("_limit", "9" * 40)).limit == 500
    assert parse(("_limit", "007")).limit == 7
    assert parse(default_format="csv").format == "csv"
    assert parse(("_format", "ndjson"), default_format="csv").format == "ndjson"


def test_sort_fields_and_search():
    q = parse(("_sort", "-price,name"), ("_fields", "name,id"), ("_q", "Hello"))
    assert q.sort == (Sort("price", True), Sort("name", False))
    assert q.fields == ("name", "id")
    assert q.q == "Hello"
    assert parse(("_q", "")).q is None
    no_text = [Column("n", "integer")]
    with pytest.raises(InvalidQuery, match="no"):
        parse_query([("_q", "x")], no_text, max_limit=10)


def test_cursor_round_trip_and_tampering():
    base = [("_sort", "-day,at,name"), ("id__gt", "1")]
    binding = parse(*base, version="3").binding
    cursor = encode_cursor(binding, ["2024-01-02", "2024-01-02T03:04:05.000006", None], 41)
    q = parse(*base, ("_cursor", cursor), version="3")
    assert q.after == After((date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5, 6), None), 41)
    # Flip any character: refused, never an exception of another kind.
    for i in range(len(cursor)):
        flipped = cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1 :]
        with pytest.raises(InvalidQuery):
            parse(*base, ("_cursor", flipped), version="3")
    # A well-signed cursor whose content does not fit the sort is refused too.
    for values, rowid in (
        (["x", None, None], 1),
        ([None, None], 1),
        ([None, None, None], -1),
        ([None, None, 5], 1),
        ([None, None, None], 1.5),
        ({"a": 1}, 1),
    ):
        forged = encode_cursor(binding, values, rowid)  # type: ignore[arg-type]
        with pytest.raises(InvalidQuery):
            parse(*base, ("_cursor", forged), version="3")


def test_accept_header():
    assert format_from_accept(None) == "json"
    assert format_from_accept("") == "json"
    assert format_from_accept("*/*") == "json"
    assert format_from_accept("text/csv") == "csv"
    assert format_from_accept("application/x-ndjson") == "ndjson"
    assert format_from_accept("text/csv;q=0.5, application/json;q=0.9") == "json"
    assert format_from_accept("text/html, text/csv;q=0.1") == "csv"
    assert format_from_accept("image/png") is None
    assert format_from_accept("text/csv;q=0") is None
    assert format_from_accept("text/csv;q=abc, application/ndjson") == "ndjson"


names = st.sampled_from(
    [
        "id",
        "price",
        "ok",
        "name",
        "day",
        "at",
        "",
        "_sort",
        "_fields",
        "_limit",
        "_cursor",
        "_q",
        "_format",
        "_x",
        "id__gt",
        "name__in",
        "at__lte",
        "day__isnull",
        "x__y__z",
        "__",
        "name__contains",
        "ok__ne",
        "price__in",
        "-id",
    ]
) | st.text(max_size=12)
values = st.sampled_from(
    [
        "",
        "1",
        "-1",
        "0",
        "1.5",
        "true",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "a,b",
        ",",
        "-id",
        "id,-price",
        "nan",
        "inf",
        "1e308",
        "1e999",
        "9" * 30,
        "eyJrIjpbXSwiciI6MX0.AAAA",
    ]
) | st.text(max_size=30)


@settings(max_examples=400, deadline=None)
@given(params=st.lists(st.tuples(names, values), max_size=8), version=st.text(max_size=5))
def test_garbage_only_ever_raises_invalid_query(params, version):
    try:
        query = parse_query(params, COLUMNS, max_limit=50, version=version)
    except InvalidQuery as exc:
        assert exc.detail
    else:
        assert 1 <= query.limit <= 50


@settings(max_examples=200, deadline=None)
@given(
    cursor=st.text(max_size=80)
    | st.binary(max_size=60).map(
        lambda b: __import__("base64").urlsafe_b64encode(b).decode().rstrip("=") + ".x"
    )
)
def test_garbage_cursors_are_refused(cursor):
    with pytest.raises(InvalidQuery):
        parse(("_sort", "id"), ("_cursor", cursor))
