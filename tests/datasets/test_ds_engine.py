"""The engine on real files: pages, keys, NULL order, timeouts, threads, eviction, cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dshelpers import query, write_parquet

from claw402.datasets.engine import Engine, QueryTimeout, open_dataset
from claw402.datasets.ingest import ingest
from claw402.datasets.query import InvalidQuery, parse_query


def ids(page) -> list[int]:
    return [row[0] for row in page.rows]


def test_first_page_filters_and_projection(cities, engine):
    ds = engine.open(cities.path, cities.columns, key=cities.key)
    page = ds.records(query(cities))
    assert page.columns[0] == "id" and ids(page) == [1, 2, 3, 4, 5, 6, 7] and page.next is None
    assert ids(ds.records(query(cities, ("country", "Spain")))) == [3, 4]
    assert ids(ds.records(query(cities, ("country__ne", "Spain")))) == [1, 2, 5, 6, 7]
    assert ids(ds.records(query(cities, ("population__isnull", "true")))) == [6]
    assert ids(ds.records(query(cities, ("population__lt", "0")))) == [7]
    assert ids(ds.records(query(cities, ("capital", "true"), ("area__gt", "200")))) == [3]
    assert ids(ds.records(query(cities, ("city__icontains", "LI")))) == [1]
    assert ids(ds.records(query(cities, ("city__startswith", "P")))) == [2, 5]
    assert ids(ds.records(query(cities, ("country__in", "Spain,France")))) == [3, 4, 5, 6]
    assert ids(ds.records(query(cities, ("founded__lt", "1000-01-01")))) == [3, 4]
    assert ids(ds.records(query(cities, ("updated__gte", "2024-01-02T10:00:00Z")))) == [1, 2, 5]
    assert ids(ds.records(query(cities, ("_q", "SPA")))) == [3, 4]
    assert ids(ds.records(query(cities, ("_q", "is")))) == [1, 5]  # Lisbon, Paris
    page = ds.records(query(cities, ("_fields", "city,id"), ("_limit", "2")))
    assert page.items == [{"city": "Lisbon", "id": 1}, {"city": "Porto", "id": 2}]
    assert page.next is not None


def test_nulls_sort_as_the_largest_value(cities, engine):
    ds = engine.open(cities.path, cities.columns)
    asc = ds.records(query(cities, ("_sort", "population"), ("_fields", "id")))
    assert ids(asc) == [7, 2, 1, 4, 5, 3, 6]
    desc = ds.records(query(cities, ("_sort", "-founded,id"), ("_fields", "id")))
    assert ids(desc) == [2, 5, 6, 7, 1, 3, 4]


def test_paging_in_both_directions_with_ties(cities, engine):
    ds = engine.open(cities.path, cities.columns)
    for sort in ("country", "-country", "capital,-population", "-founded", "-updated,country"):
        whole = ids(ds.records(query(cities, ("_sort", sort))))
        seen, cursor = [], None
        while True:
            params = [("_sort", sort), ("_limit", "2")] + ([("_cursor", cursor)] if cursor else [])
            page = ds.records(query(cities, *params))
            seen += ids(page)
            cursor = page.next
            if cursor is None:
                break
        assert seen == whole and sorted(seen) == [1, 2, 3, 4, 5, 6, 7], sort


def test_record_by_key(cities, engine):
    ds = engine.open(cities.path, cities.columns, key="id")
    assert ds.record("3")["city"] == "Madrid"
    assert ds.record("+3")["city"] == "Madrid"
    assert ds.record("99") is None
    assert ds.record("abc") is None  # cannot be an integer, so no such record
    with pytest.raises(ValueError, match="no key"):
        engine.open(cities.path, cities.columns).record("3")


def test_count(cities, engine):
    ds = engine.open(cities.path, cities.columns)
    assert ds.count(query(cities)) == 7
    assert ds.count(query(cities, ("country", "Portugal"), ("_limit", "1"))) == 2


def test_cursor_from_another_version_is_refused(cities, engine):
    ds = engine.open(cities.path, cities.columns, version="v2")
    page = ds.records(query(cities, ("_limit", "2"), version="v2"))
    ds.records(query(cities, ("_limit", "2"), ("_cursor", page.next), version="v2"))
    with pytest.raises(InvalidQuery, match="version"):
        other = engine.open(cities.path, cities.columns, version="v3")
        other.records(query(cities, ("_limit", "2"), ("_cursor", page.next), version="v2"))


def test_open_dataset_takes_registry_columns(cities):
    columns = [c.to_dict() for c in cities.columns]
    ds = open_dataset(str(cities.path), columns, "id")
    assert ds.columns == tuple(cities.columns)
    assert ds.record("1")["city"] == "Lisbon"


def test_unreadable_file_fails_on_use(tmp_path, engine):
    ds = engine.open(tmp_path / "missing.duckdb", [])
    with pytest.raises(Exception, match=r"missing\.duckdb"):
        ds.records(parse_query([], [], max_limit=10))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """300,000 rows: three row groups, so parallel scans and row-group pruning are exercised."""
    folder = tmp_path_factory.mktemp("big")
    source = folder / "big.csv"
    with source.open("w") as fh:
        fh.write("id,word,n\n")
        fh.writelines(f"{i},w{i * 7919 % 100003},{i % 97}\n" for i in range(300_000))
    return ingest(source, folder / "v")


def test_source_order_holds_across_row_groups(big, engine):
    ds = engine.open(big.path, big.columns)
    expected = [i for i in range(300_000) if i % 97 == 5]
    seen, cursor = [], None
    while True:
        params = [("n", "5"), ("_limit", "500")] + ([("_cursor", cursor)] if cursor else [])
        page = ds.records(query(big, *params))
        seen += ids(page)
        if not (cursor := page.next):
            break
    assert seen == expected
    last = ds.records(
        query(big, ("_cursor", ds.records(query(big, ("_limit", "1000"))).next), ("_limit", "3"))
    )
    assert ids(last) == [1000, 1001, 1002]
    top = ds.records(query(big, ("_sort", "-word,id"), ("_limit", "3"), ("n__lt", "50")))
    words = sorted(
        ((f"w{i * 7919 % 100003}", i) for i in range(300_000) if i % 97 < 50),
        key=lambda t: (t[0], -t[1]),
        reverse=True,
    )[:3]
    assert [(r[1], r[0]) for r in top.rows] == words


def test_timeout_interrupts(big, engine):
    ds = engine.open(big.path, big.columns)
    # A non-ASCII needle: no search file answers it, DuckDB scans every row.
    slow = query(big, ("_q", "zzé"), ("_sort", "-word,n"))
    with pytest.raises(QueryTimeout):
        ds.records(slow, timeout_ms=1)
    # The engine is fine afterwards, and a generous budget lets the query finish.
    assert ds.records(slow, timeout_ms=60_000).rows == ()
    assert ds.records(query(big, ("_limit", "1")), timeout_ms=1000).rows == ((0, "w0", 0),)


def test_concurrent_calls(big, cities):
    engine = Engine(cache_rows=0, max_open=1)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        try:
            for j in range(15):
                if (i + j) % 2:
                    ds = engine.open(big.path, big.columns)
                    page = ds.records(query(big, ("n", str(j)), ("_limit", "5")))
                    assert [r[2] for r in page.rows] == [j] * 5
                else:
                    ds = engine.open(cities.path, cities.columns, key="id")
                    assert ds.record(str(1 + j % 7))["id"] == 1 + j % 7
        except BaseException as exc:
            errors.append(exc)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert errors == []
    assert engine.attached <= 2
    engine.close()


def test_lru_detaches_idle_datasets(tmp_path):
    engine = Engine(max_open=2)
    results = [
        ingest(
            write_parquet(tmp_path / f"{i}.parquet", [("n", "integer")], [(i,)]), tmp_path / f"v{i}"
        )
        for i in range(4)
    ]
    for _ in range(2):
        for r in results:
            ds = engine.open(r.path, r.columns)
            assert ds.records(parse_query([], r.columns, max_limit=5)).rows[0][0] == int(
                Path(r.path).parent.name[1:]
            )
    assert engine.attached == 2
    engine.close()


def test_page_cache_serves_repeats(cities):
    engine = Engine(cache_rows=100)
    ds = engine.open(cities.path, cities.columns)
    first = ds.records(query(cities))
    again = ds.records(query(cities))
    assert (again.columns, again.rows, again.next) == (first.columns, first.rows, first.next)
    assert ds.page_json(query(cities)) is not None  # served from the cache
    assert ds.page_json(query(cities, ("_limit", "3"))) is None
    engine.close()


def test_awkward_column_names(tmp_path, engine):
    source = tmp_path / "odd.csv"
    source.write_text('"a?b","say ""hi""","{t}",sp ace,ümlaut,$1\n1,x,2,y,z,3\n4,u,5,v,w,6\n')
    result = ingest(source, tmp_path / "v", key="{t}")
    names = [c.name for c in result.columns]
    assert names == ["a?b", 'say "hi"', "{t}", "sp ace", "ümlaut", "$1"]
    ds = engine.open(result.path, result.columns, key="{t}")
    params = [
        ("a?b__gte", "1"),
        ('say "hi"', "u"),
        ("_sort", "-$1,ümlaut"),
        ("_fields", "sp ace,{t}"),
    ]
    assert ds.records(query(result, *params)).items == [{"sp ace": "v", "{t}": 5}]
    assert ds.record("2")["ümlaut"] == "z"
