"""The row store's answers (indexed.py) are DuckDB's answers, byte for byte, page after page."""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
import pytest

from claw402.datasets import indexed
from claw402.datasets.engine import Dataset, Engine
from claw402.datasets.ingest import IngestResult, ingest
from claw402.datasets.output import render
from claw402.datasets.query import Query, parse_query
from claw402.datasets.rowstore import FOLDER, RowStore, RowStores, build

WORDS = ["alpha", "bravo", "Charlie", "delta", "echo", "fox", "Golf", "hotel"]
ROWS = 3000


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    """Sorted ids, a float and an int column (unsorted, repeated values), one int column with
    NULLs (not laid flat), text with mixed case, a date."""
    rnd = random.Random(5)
    folder = tmp_path_factory.mktemp("mixed")
    lines = ["id,price,qty,maybe,name,note,day"]
    for i in range(ROWS):
        maybe = "" if i % 7 == 0 else str(rnd.randrange(50))
        note = " ".join(rnd.choice(WORDS) for _ in range(3))
        lines.append(f"{i * 2 + 1},{rnd.randrange(400) / 4},{rnd.randrange(30)},{maybe},"
                     f"n{rnd.randrange(90)},{note},2024-01-{rnd.randrange(1, 29):02d}")  # fmt: skip
    source = folder / "mixed.csv"
    source.write_text("\n".join(lines) + "\n")
    result = ingest(source, folder / "v1", compact_rows=0)  # search files too
    assert build(result.path, result.columns)
    return result


@pytest.fixture(scope="module")
def dataset(mixed: IngestResult) -> Dataset:
    engine = Engine(cache_rows=0)
    deadline = time.monotonic() + 5
    ds = engine.open(mixed.path, mixed.columns, version="v1")
    while ds.page_json(parse_query([], mixed.columns, max_limit=1000, version="v1")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return ds


def _q(result: IngestResult, params: list[tuple[str, str]]) -> Query:
    return parse_query(params, result.columns, max_limit=1000, version="v1")


def _walk(dataset: Dataset, result: IngestResult, params: list[tuple[str, str]]) -> int:
    """Every page of `params` both ways, following the cursors; how many answered fast."""
    fast, cursor = 0, None
    for _ in range(50):
        query = _q(result, params + ([("_cursor", cursor)] if cursor else []))
        page = dataset.records(query)
        expected = render(page, "json")[0]
        found = dataset.page_json(query)
        if found is not None:
            body, rows = found
            assert body == expected, params
            assert rows == len(page.rows), params  # what a row-priced call is charged for
            fast += 1
        cursor = orjson.loads(expected)["next"]
        if cursor is None:
            return fast
    return fast


ANSWERED = [
    [],
    [("_limit", "7")],
    [("id__gt", "1001"), ("_limit", "10")],
    [("id__gte", "11"), ("id__lt", "51")],
    [("price", "12.5")],
    [("qty", "3"), ("_limit", "5")],
    [("price__gte", "20"), ("price__lt", "30"), ("_sort", "-qty"), ("_limit", "20")],
    [("qty__lte", "4"), ("_sort", "price"), ("_limit", "50")],
    [("_sort", "-price"), ("_limit", "100")],
    [("_sort", "id"), ("_limit", "100"), ("price__gt", "90")],
    [("note__contains", "alpha bravo")],
    [("note__contains", "Charlie"), ("qty__gt", "20")],
    [("note__icontains", "charlie delta")],
    [("_q", "golf"), ("_limit", "40")],
    [("_q", "n1"), ("price__lt", "10")],
    [("id__gt", "100000")],
    [("price", "1000")],
    [("day", "2024-01-03")],  # a date column is laid flat too (as ordinals)
    [("day__gte", "2024-01-10"), ("day__lt", "2024-01-12"), ("_sort", "-price")],
    [("price__gte", "20"), ("price__lt", "40"), ("_sort", "-day"), ("_limit", "30")],
    [("_sort", "day"), ("_limit", "300")],  # runs of equal dates: the cursor's row decides
    [("_sort", "-day"), ("qty", "7"), ("_limit", "20")],
]


@pytest.mark.parametrize("params", ANSWERED, ids=[repr(p) for p in ANSWERED])
def test_the_row_store_answers_as_duckdb(
    dataset: Dataset, mixed: IngestResult, params: list[tuple[str, str]]
) -> None:
    assert _walk(dataset, mixed, params) >= 1


LEFT_TO_DUCKDB = [
    [("maybe", "3")],  # a column with NULLs is not laid flat
    [("_sort", "maybe")],
    [("_fields", "id,price")],
    [("_format", "csv")],
    [("name__startswith", "n1")],
    [("price__ne", "3")],
    [("_sort", "qty,price")],
    [("note__contains", "é")],  # not a needle the search files take
    [("_count", "exact")],  # the total and the facets come from DuckDB
    [("_facet", "qty")],
]


@pytest.mark.parametrize("params", LEFT_TO_DUCKDB, ids=[repr(p) for p in LEFT_TO_DUCKDB])
def test_what_it_cannot_answer_is_left_to_duckdb(
    dataset: Dataset, mixed: IngestResult, params: list[tuple[str, str]]
) -> None:
    assert dataset.page_json(_q(mixed, params)) is None


@pytest.mark.parametrize(
    "params",
    [
        [("qty", "3"), ("_limit", "7")],
        [("qty", "5"), ("price__gte", "50"), ("_limit", "4")],
        [("day", "2024-01-05"), ("id__gt", "2001"), ("_limit", "9")],
        [("qty", "3"), ("qty__lte", "3"), ("_limit", "20")],
    ],
)
def test_an_equality_matching_many_rows_reads_them_in_row_order(
    dataset: Dataset, mixed: IngestResult, params: list[tuple[str, str]], monkeypatch
) -> None:
    """Past `SMALL` rows of one value, its rows are read in row order from the sorted index
    (on the 10M-row bench, `quantity=` matches ~20,000 rows)."""
    monkeypatch.setattr(indexed, "SMALL", 10)
    assert _walk(dataset, mixed, params) >= 2


def test_random_queries_agree(dataset: Dataset, mixed: IngestResult) -> None:
    rnd = random.Random(11)
    ops = ["", "__gt", "__gte", "__lt", "__lte"]
    answered = 0
    for _ in range(120):
        params: list[tuple[str, str]] = []
        for _ in range(rnd.randrange(3)):
            column = rnd.choice(["id", "price", "qty", "day"])
            value = {"id": rnd.randrange(6100), "price": rnd.randrange(400) / 4,
                     "qty": rnd.randrange(30),
                     "day": f"2024-01-{rnd.randrange(1, 29):02d}"}[column]  # fmt: skip
            params.append((f"{column}{rnd.choice(ops)}", str(value)))
        if rnd.random() < 0.3:
            params.append(("note__contains", rnd.choice(WORDS)))
        if rnd.random() < 0.5:
            params.append(("_sort", rnd.choice(["price", "-price", "qty", "-qty", "-id", "-day"])))
        params.append(("_limit", str(rnd.choice([1, 3, 25, 200]))))
        answered += _walk(dataset, mixed, params) > 0
    assert answered > 60  # most of them were answered from the store


def test_a_cursor_of_another_version_is_refused(dataset: Dataset, mixed: IngestResult) -> None:
    found = dataset.page_json(_q(mixed, [("_limit", "2")]))
    assert found is not None
    cursor = orjson.loads(found[0])["next"]
    engine = Engine(cache_rows=0)
    try:
        newer = engine.open(mixed.path, mixed.columns, version="v2")
        with pytest.raises(ValueError, match="another dataset version"):
            newer.page_json(_q(mixed, [("_limit", "2"), ("_cursor", cursor)]))
    finally:
        engine.close()


def test_the_store_is_built_once_in_the_background(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(50)))
    result = ingest(source, tmp_path / "v1")
    assert RowStores().get(str(result.path), result.columns) is None  # too small: DuckDB's
    assert not (result.path.parent / FOLDER).exists()
    stores = RowStores(min_bytes=0)
    assert stores.get(str(result.path), result.columns) is None  # building, in a child
    deadline = time.monotonic() + 30
    while (store := stores.get(str(result.path), result.columns)) is None:
        assert time.monotonic() < deadline, "the row store was not built"
        time.sleep(0.05)
    assert store.rows == 50 and store.row(3) == b'{"a":3,"b":"x3"}'
    assert store.columns["a"].monotonic
    assert not build(result.path, result.columns)  # there already: not built again


def test_a_damaged_store_is_ignored(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("a\n1\n2\n")
    result = ingest(source, tmp_path / "v1")
    assert build(result.path, result.columns)
    (result.path.parent / FOLDER / "offsets.i64").write_bytes(b"\0" * 8)
    assert RowStore.open(result.path) is None


def test_a_store_of_another_data_file_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("a\n1\n2\n")
    result = ingest(source, tmp_path / "v1")
    assert build(result.path, result.columns)
    source.write_text("a\n7\n8\n9\n")  # another ingest into the same folder
    again = ingest(source, tmp_path / "v1")
    assert RowStore.open(again.path) is None
    assert build(again.path, again.columns)
    store = RowStore.open(again.path)
    assert store is not None and store.rows == 3 and store.row(0) == b'{"a":7}'
