"""Substring search through the search file answers exactly what DuckDB's scan answers."""

from __future__ import annotations

import csv
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claw402.datasets import engine as engine_module
from claw402.datasets import search
from claw402.datasets.engine import Dataset, Engine
from claw402.datasets.ingest import IngestResult, ingest
from claw402.datasets.query import parse_query

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "Fox", "golf", "needle"]
ROWS = 3_500  # three full search blocks and a partial one


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    """Upper case, newlines inside values, empty values, NULLs, several matches in a row."""
    rng = random.Random(5)
    folder = tmp_path_factory.mktemp("search")
    source = folder / "big.csv"
    with source.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "title", "note", "size"])
        for i in range(ROWS):
            title = " ".join(rng.choice(WORDS) for _ in range(4))
            if i % 97 == 0:
                title = title.upper()
            if i % 101 == 0:
                title = title.replace(" ", "\n", 1)
            note = "" if i % 11 == 0 else ("needle needle" if i % 333 == 0 else f"n{i}")
            out.writerow([i, title, note, i % 13])
    return ingest(source, folder / "v1", compact_rows=0)  # a DuckDB file and its search files


@pytest.fixture(scope="module")
def without_search(big: IngestResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same DuckDB file with no search file beside it: every query scans."""
    folder = tmp_path_factory.mktemp("scan")
    shutil.copy(big.path, folder / big.path.name)
    return folder / big.path.name


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(cache_rows=0)
    yield eng
    eng.close()


def everything(
    dataset: Dataset, big: IngestResult, params: list[tuple[str, str]], limit: int = 7
) -> list[dict[str, Any]]:
    """All pages, through the cursor."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        extra = [("_cursor", cursor)] if cursor else []
        query = parse_query(
            [*params, ("_limit", str(limit)), *extra], big.columns, max_limit=1000, version="v1"
        )
        page = dataset.records(query)
        rows += page.items
        cursor = page.next
        if cursor is None:
            return rows


NEEDLES = [
    "alpha bravo",
    "ALPHA",
    "needle",
    "needle needle",
    "n12",
    "o g",
    "x",
    "zzz",
    "fox",
    "é",
    "a\nb",
    "a\x1fb",
    "1",
]


@pytest.mark.parametrize("sort", [None, "-size,id"])
@pytest.mark.parametrize("op", ["title__contains", "title__icontains", "note__contains", "_q"])
def test_search_file_and_scan_agree(
    big: IngestResult, without_search: Path, engine: Engine, op: str, sort: str | None
) -> None:
    indexed = engine.open(big.path, big.columns, version="v1")
    scanned = engine.open(without_search, big.columns, version="v1")
    for needle in NEEDLES:
        params = [(op, needle), *([("_sort", sort)] if sort else [])]
        expected = everything(scanned, big, params)
        assert everything(indexed, big, params) == expected, needle
        query = parse_query(params, big.columns, max_limit=1000, version="v1")
        assert indexed.count(query) == len(expected)


@pytest.mark.parametrize(
    ("op", "extra"),
    [
        (op, extra)
        for op in ("title__contains", "title__icontains", "_q")
        for extra in (("_fields", "id,size"), ("size", "3"), ("_q", "o"))
        if op != extra[0]  # one _q per query
    ],
)
def test_search_with_other_parameters(
    big: IngestResult, without_search: Path, engine: Engine, op: str, extra: tuple[str, str]
) -> None:
    """Fields without the searched column, another filter beside the search, both searches:
    rows the search files answer alone and rows DuckDB must check again agree with the scan."""
    indexed = engine.open(big.path, big.columns, version="v1")
    scanned = engine.open(without_search, big.columns, version="v1")
    for needle in ["alpha", "ALPHA", "Fox", "fox", "needle"]:
        params = [(op, needle), extra]
        assert everything(indexed, big, params) == everything(scanned, big, params), needle


def test_search_is_used_for_ascii_needles(big: IngestResult, engine: Engine) -> None:
    dataset = engine.open(big.path, big.columns, version="v1")
    assert dataset._candidates(parse_query([("_q", "Needle")], big.columns, max_limit=10))
    assert dataset._candidates(parse_query([("_q", "é")], big.columns, max_limit=10)) is None
    # A column's own filter narrows through that column's file only.
    both = [("_q", "alpha"), ("note__icontains", "N1234")]
    assert dataset._candidates(parse_query(both, big.columns, max_limit=10)) == [1234]
    assert (
        dataset._candidates(parse_query([("note__contains", "zzz")], big.columns, max_limit=10))
        == []
    )


def test_rows_match_the_lines(big: IngestResult) -> None:
    folder = big.path.parent
    index = search.TextIndex.open(folder)
    assert index is not None
    titles = (folder / "search-0.txt").read_bytes().decode().split("\n")[:-1]
    notes = (folder / "search-1.txt").read_bytes().decode().split("\n")[:-1]
    assert len(titles) == len(notes) == ROWS
    assert "\xff" in titles[0]  # row 0's newline, replaced: one line per row
    assert notes[0] == "" and notes[1] == "n1"  # NULL, then a value
    for needle in ["alpha", "needle needle", "n3", "charlie delta", "o", "nothing"]:
        expected = [i for i, line in enumerate(titles) if needle in line]
        assert index.rows("title", needle, limit=ROWS) == expected, needle
        either = [i for i in range(ROWS) if needle in titles[i] or needle in notes[i]]
        assert index.rows(None, needle, limit=ROWS) == either, needle
    assert index.rows("title", "a", limit=10) is None  # more than the limit: the caller scans
    assert index.rows("size", "1", limit=10) is None  # not a string column


def test_too_many_candidates_fall_back_to_the_scan(
    big: IngestResult, without_search: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "MAX_CANDIDATES", 3)
    indexed = engine.open(big.path, big.columns, version="v1")
    scanned = engine.open(without_search, big.columns, version="v1")
    params = [("title__contains", "alpha")]
    assert indexed._candidates(parse_query(params, big.columns, max_limit=10)) is None
    assert everything(indexed, big, params, limit=50) == everything(scanned, big, params, 50)
    # Case-sensitive: most lowercased matches are turned down, and DuckDB scans the rest.
    upper = [("title__contains", "ALPHA")]
    for params in (upper, [*upper, ("_sort", "-id")]):
        assert everything(indexed, big, params) == everything(scanned, big, params) != []


def test_a_damaged_index_is_ignored(
    big: IngestResult, without_search: Path, tmp_path: Path, engine: Engine
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(big.path.parent, folder)
    (folder / search.INDEX_FILE).write_text("{not json")
    dataset = engine.open(folder / big.path.name, big.columns, version="v1")
    params = [("_q", "needle needle")]
    assert dataset._candidates(parse_query(params, big.columns, max_limit=10)) is None
    scanned = engine.open(without_search, big.columns, version="v1")
    assert everything(dataset, big, params) == everything(scanned, big, params) != []


def test_no_search_file_without_string_columns(tmp_path: Path) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text("a,b\n1,2.5\n3,4.5\n")
    result = ingest(source, tmp_path / "v1", compact_rows=0)
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["data.duckdb"]


def test_search_files_per_string_column(big: IngestResult) -> None:
    names = sorted(p.name for p in big.path.parent.iterdir())
    assert names == ["data.duckdb", "search-0.txt", "search-1.txt", "search.idx"]


def test_a_failed_ingest_leaves_no_search_file(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("a,b\nx,1\ny,2,3\n")
    with pytest.raises(Exception):  # noqa: B017 -- the message is ingest's own test
        ingest(source, tmp_path / "v1", compact_rows=0)
    assert not (tmp_path / "v1").exists()


def test_a_search_past_its_deadline_stops(big: IngestResult) -> None:
    index = search.TextIndex.open(big.path.parent)
    assert index is not None
    with pytest.raises(TimeoutError):
        index.rows(None, "nothing", limit=10, deadline=time.monotonic() - 1)
    assert index.rows(None, "nothing", limit=10, deadline=time.monotonic() + 60) == []


def test_matches_across_chunk_edges(big: IngestResult, monkeypatch: pytest.MonkeyPatch) -> None:
    index = search.TextIndex.open(big.path.parent)
    assert index is not None
    expected = index.rows("title", "charlie delta", limit=ROWS)
    monkeypatch.setattr(search, "CHUNK", 7)  # every match straddles some chunk edge
    assert index.rows("title", "charlie delta", limit=ROWS) == expected != []


@pytest.mark.parametrize(("first", "window"), [(1, 1), (1, 1000), (1024, 1024), (3, 4096)])
def test_any_column_search_by_windows(
    big: IngestResult, monkeypatch: pytest.MonkeyPatch, first: int, window: int
) -> None:
    """`_q` reads every column a window of rows at a time (growing from `FIRST_WINDOW` to
    `WINDOW`); the rows found do not change."""
    index = search.TextIndex.open(big.path.parent)
    assert index is not None
    needles = ["alpha", "needle", "n3", "o g", "nothing"]
    expected = {n: index.rows(None, n, limit=ROWS) for n in needles}
    monkeypatch.setattr(search, "WINDOW", window)
    monkeypatch.setattr(search, "FIRST_WINDOW", first)
    for n in needles:
        assert index.rows(None, n, limit=ROWS) == expected[n], n
        found = index.scan(None, n, start=777)
        assert found is not None and found.take(ROWS) == [r for r in expected[n] if r >= 777]
