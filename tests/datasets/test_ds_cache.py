"""The answers cache: bounded by bytes however many versions are touched; a JSON page kept as
its body, which `page_json` serves byte for byte as rendered from DuckDB's answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from dshelpers import query

from claw402.datasets.budget import Budget
from claw402.datasets.engine import Engine
from claw402.datasets.ingest import ingest
from claw402.datasets.output import render
from claw402.datasets.pages import Page, PageCache, page_size


def tenants(tmp_path: Path, n: int) -> list:
    found = []
    for t in range(n):
        source = tmp_path / f"t{t}.csv"
        source.write_text("id,name,price\n" + "".join(f"{i},n{t}-{i},{i / 7}\n" for i in range(20)))
        found.append(ingest(source, tmp_path / f"v{t}", key="id"))
    return found


def test_repeat_json_pages_come_from_the_cache_as_rendered(cities):
    engine = Engine(cache_bytes="1MB")
    try:
        ds = engine.open(cities.path, cities.columns, key="id", version="v1")
        for params in [(), (("country", "Spain"),), (("_sort", "-population"), ("_limit", "2"))]:
            q = query(cities, *params)
            assert ds.page_json(q) is None  # a small version has no row store: DuckDB answers
            page = ds.records(q)
            body, rows = ds.page_json(q)  # now from the cache, without DuckDB
            assert body == render(page, "json")[0] and rows == len(page.rows)
            again = ds.records(q)  # read back from the cached body
            assert again.items == page.items and again.next == page.next
        uncached = Engine(cache_rows=0)
        try:
            other = uncached.open(cities.path, cities.columns, key="id", version="v1")
            q = query(cities, ("_sort", "-population"), ("_limit", "2"))
            assert render(other.records(q), "json")[0] == ds.page_json(q)[0]
            assert other.page_json(q) is None
        finally:
            uncached.close()
    finally:
        engine.close()


def test_csv_pages_and_count_queries_are_not_served_as_json(cities):
    engine = Engine()
    try:
        ds = engine.open(cities.path, cities.columns, key="id")
        csv = query(cities, ("_format", "csv"))
        first = ds.records(csv)
        assert ds.records(csv) is first and ds.page_json(csv) is None
        counted = query(cities, ("_count", "exact"))
        ds.records(counted)
        assert ds.page_json(counted) is None  # the body lacks `count`: the runtime adds it
        assert ds.page_json(query(cities)) is not None  # same page, cached when counted
    finally:
        engine.close()


def test_the_cache_stays_within_its_bytes_however_many_tenants(tmp_path):
    versions = tenants(tmp_path, 30)
    engine = Engine(cache_bytes=20_000, max_open=4)
    try:
        for result in versions:
            ds = engine.open(result.path, result.columns, key="id")
            ds.records(query(result))
            assert engine._cache.bytes <= 20_000
        assert 3 <= len(engine._cache) < 30  # the least recently used went first
        last = engine.open(versions[-1].path, versions[-1].columns, key="id")
        assert last.page_json(query(versions[-1])) is not None
        first = engine.open(versions[0].path, versions[0].columns, key="id")
        assert first.page_json(query(versions[0])) is None
    finally:
        engine.close()
    roomy = Engine(cache_bytes=Budget().cache_bytes, max_open=4)
    try:  # the default holds one 20-row page of each of 10,000 such tenants
        ds = roomy.open(versions[0].path, versions[0].columns, key="id")
        ds.records(query(versions[0]))
        assert roomy._cache.bytes * 10_000 <= roomy._cache.max_bytes
    finally:
        roomy.close()


def test_page_cache_bounds():
    page = Page(("a",), tuple((f"value {i}",) for i in range(100)))
    cache = PageCache(max_bytes=page_size(page) * 3)
    for i in range(5):
        cache.put(("k", i), page, page_size(page), len(page.rows))
        assert cache.bytes <= cache.max_bytes
    assert cache.get(("k", 0)) is None and cache.get(("k", 4)) is page
    cache.put(("huge",), page, cache.max_bytes, 1)  # larger than the whole cache: not kept
    assert cache.get(("huge",)) is None and cache.get(("k", 4)) is page
    by_rows = PageCache(max_bytes=10**9, max_rows=150)
    by_rows.put(("a",), page, 1, 100)
    by_rows.put(("b",), page, 1, 100)
    assert by_rows.get(("a",)) is None and by_rows.get(("b",)) is page
    off = PageCache(max_bytes=10**9, max_rows=0)
    off.put(("a",), page, 1, 1)
    assert off.get(("a",)) is None


def test_budget_page_cache_from_the_environment():
    assert Budget.from_env({"CLAW402_PAGE_CACHE": "8MB"}).cache_bytes == "8MB"
    with pytest.raises(ValueError, match="invalid size"):
        Budget.from_env({"CLAW402_PAGE_CACHE": "plenty"})


def test_a_cached_body_holds_what_it_is_counted_for(tmp_path: Path):
    import tracemalloc

    (version,) = tenants(tmp_path, 1)
    engine = Engine(cache_bytes="64MB")
    try:
        ds = engine.open(version.path, version.columns, key="id", version="v1")
        queries = [query(version, ("id__gt", str(i)), ("_limit", "5")) for i in range(15)]
        ds.records(queries[0])  # DuckDB's first-use allocations, outside the measurement
        tracemalloc.start()
        before, counted = tracemalloc.get_traced_memory()[0], engine._cache.bytes
        for q in queries[1:]:
            ds.records(q)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        counted = engine._cache.bytes - counted
        assert counted > 0 and held < 1.5 * counted, (held, counted)
    finally:
        engine.close()
