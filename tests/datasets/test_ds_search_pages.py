"""Substring and `_q` pages from the row store and search files are DuckDB's own scan's pages,
byte for byte: mixed case, non-ASCII text, matches at the edges of rows and of blocks, cursors."""

from __future__ import annotations

import csv
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from claw402.datasets import indexed, search
from claw402.datasets.engine import Dataset, Engine
from claw402.datasets.indexed import SearchUnfinished
from claw402.datasets.ingest import IngestResult, ingest
from claw402.datasets.output import render
from claw402.datasets.query import Query, parse_query
from claw402.datasets.rowstore import FOLDER, RowStore, RowStores, build

ROWS = 2600  # three search blocks (1,024 rows each), the last one partial
WORDS = ["alpha", "Alpha", "ALPHA", "İstanbul", "İSTANBUL", "istanbul", "straße", "Straße",
         "STRASSE", "café", "CAFÉ", "\u212a-sign", "ǅemal", "bravo", "Charlie"]  # fmt: skip
# "boundary" where a line starts or ends, split over two rows (must not match), inside a value
# across its newline (must not match either), and in capitals.
TITLES = {
    0: "boundary first",
    100: "boundary",
    500: "bound\nary",
    501: "Boundary",
    1022: "xx bound",  # with the next row: "bound\nary", no match
    1023: "ary at the end of the first thousand",
    1024: "boundary opens the second",
    2047: "ends with boundary",
    2048: "boundary starts",
    ROWS - 1: "last boundary",
}


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    """`title`: mixed case and non-ASCII; `code`: plain (ASCII, no capitals: lowering leaves
    it as it is); `note`: NULLs, empty values, capitals."""
    rnd = random.Random(21)
    folder = tmp_path_factory.mktemp("pages")
    source = folder / "text.csv"
    with source.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "title", "code", "note", "qty"])
        for i in range(ROWS):
            title = TITLES.get(i) or " ".join(rnd.choice(WORDS) for _ in range(3))
            code = "".join(rnd.choice("abcxyz-_ 0") for _ in range(6))
            note = "" if i % 13 == 0 else ("Note X" if i % 5 == 0 else f"n{i}x")
            out.writerow([i, title, code, None if i % 17 == 0 else note, i % 10])
    result = ingest(source, folder / "v1", compact_rows=0)  # search files beside the table
    assert build(result.path, result.columns)
    return result


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = Engine(cache_rows=0)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def fast(text: IngestResult, engine: Engine) -> Dataset:
    dataset = engine.open(text.path, text.columns, version="v1")
    with pytest.raises(SearchUnfinished):  # its search files are opened off the event loop
        dataset.page_json(_query(text, [("_q", "alpha")]), inline=True)
    assert dataset.page_json(_query(text, [("_q", "alpha")])) is not None
    return dataset


@pytest.fixture(scope="module")
def scanned(
    text: IngestResult, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Dataset:
    """The same table with no search file and no row store: DuckDB scans every query."""
    folder = tmp_path_factory.mktemp("scanned")
    shutil.copy(text.path, folder / text.path.name)
    return engine.open(folder / text.path.name, text.columns, version="v1")


def _query(text: IngestResult, params: list[tuple[str, str]]) -> Query:
    return parse_query(params, text.columns, max_limit=1000, version="v1")


Params = list[tuple[str, str]]


def _walk(fast: Dataset, scanned: Dataset, text: IngestResult, params: Params) -> list[int]:
    """Every page both ways, through the cursors; the ids found. Every page from the fast path
    (inline as the gateway asks first, else as it asks next) is DuckDB's page to the byte."""
    ids, cursor = [], None
    for _ in range(1000):
        query = _query(text, params + ([("_cursor", cursor)] if cursor else []))
        expected = render(scanned.records(query), "json")[0]
        try:
            found = fast.page_json(query, inline=True)
        except SearchUnfinished:  # a busy machine: over the inline budget
            found = fast.page_json(query, timeout_ms=60_000)
        assert found is not None, params
        assert found[0] == expected, params
        body = orjson.loads(expected)
        assert found[1] == len(body["items"])
        ids += [item["id"] for item in body["items"]]
        cursor = body["next"]
        if cursor is None:
            return ids
    raise AssertionError("no last page")


PAGES = [
    [("title__contains", "boundary")],
    [("title__icontains", "BOUNDARY")],
    [("_q", "boundary")],
    [("title__contains", "Alpha"), ("_limit", "9")],
    [("title__contains", "ALPHA"), ("_limit", "50")],
    [("title__icontains", "alpha"), ("_limit", "100")],
    [("_q", "ALPHA"), ("_limit", "33")],
    [("title__icontains", "istanbul"), ("_limit", "40")],
    [("title__contains", "stanbul"), ("_limit", "40")],
    [("title__icontains", "strasse"), ("_limit", "40")],
    [("title__contains", "stra"), ("_limit", "40")],
    [("title__icontains", "caf"), ("_limit", "64")],
    [("_q", "k"), ("_limit", "200")],  # the Kelvin sign lowers to an ASCII k
    [("code__contains", "ab"), ("_limit", "25")],
    [("code__contains", "AB")],  # a plain column holds no capital: no row
    [("code__icontains", "AB"), ("_limit", "25")],
    [("note__contains", "X"), ("_limit", "80")],
    [("note__contains", "x"), ("_limit", "80")],
    [("_q", "x"), ("_limit", "500")],
    [("title__contains", "Alpha"), ("qty__gt", "6"), ("_limit", "5")],
    [("title__contains", "Alpha"), ("id__gte", "1000"), ("id__lt", "1400")],
    [("title__contains", "ALPHA"), ("title__contains", "Charlie")],
    [("title__icontains", "alpha"), ("note__contains", "X"), ("_limit", "10")],
    [("_q", "bravo"), ("title__contains", "Charlie"), ("_limit", "20")],
    [("title__contains", "zzz")],
]


@pytest.mark.parametrize("params", PAGES, ids=[repr(p) for p in PAGES])
def test_pages_are_the_scans_bytes(
    fast: Dataset, scanned: Dataset, text: IngestResult, params: list[tuple[str, str]]
) -> None:
    _walk(fast, scanned, text, params)


def test_case_and_unicode_follow_duckdbs_lower(
    fast: Dataset, scanned: Dataset, text: IngestResult
) -> None:
    """What the pages above agree on, said outright: DuckDB lowers by simple case mapping,
    `__contains` is exact to the byte."""
    titles = {i: t for i, t in enumerate(_titles(text))}

    def ids(params: list[tuple[str, str]]) -> set[int]:
        return set(_walk(fast, scanned, text, [*params, ("_limit", "1000")]))

    def having(*words: str) -> set[int]:
        return {i for i, t in titles.items() if any(w in t for w in words)}

    assert ids([("title__contains", "Alpha")]) == having("Alpha") != having("alpha", "ALPHA")
    assert ids([("title__icontains", "alpha")]) == having("alpha", "Alpha", "ALPHA")
    # İ lowers to a plain i (not Python's i + combining dot): "istanbul" finds all three.
    assert ids([("title__icontains", "istanbul")]) == having("İstanbul", "İSTANBUL", "istanbul")
    assert ids([("title__contains", "stanbul")]) == having("İstanbul", "istanbul")
    # ß stays ß: "strasse" finds STRASSE only, "stra" the lowercase straße only.
    assert ids([("title__icontains", "strasse")]) == having("STRASSE")
    assert ids([("title__contains", "stra")]) == having("straße")
    assert ids([("title__icontains", "caf")]) == having("café", "CAFÉ")
    assert ids([("_q", "k")]) == having("\u212a") != set()  # the Kelvin sign lowers to k
    assert ids([("title__contains", "K")]) == set()
    assert fast.page_json(_query(text, [("title__contains", "café")])) is None  # DuckDB's


def test_matches_at_row_and_block_edges(
    fast: Dataset, scanned: Dataset, text: IngestResult
) -> None:
    """Lines start and end at matches, a needle split over two rows or over a value's own
    newline is no match, and block edges (rows 1024, 2048) change nothing."""
    expected = [0, 100, 1024, 2047, 2048, ROWS - 1]
    assert (
        _walk(fast, scanned, text, [("title__contains", "boundary"), ("_limit", "2")]) == expected
    )
    assert _walk(fast, scanned, text, [("title__icontains", "boundary")]) == sorted(
        [*expected, 501]
    )
    for limit in ("1", "4"):  # cursors in the middle of a block and on its edge
        found = _walk(fast, scanned, text, [("_q", "boundary"), ("_limit", limit)])
        assert found == sorted([*expected, 501])


def test_q_windows_and_runs_change_nothing(
    fast: Dataset, scanned: Dataset, text: IngestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_q` reads windows of rows in every column and takes each column's matches a run at a
    time; any window size gives the same pages."""
    for first, window in ((1, 1), (3, 7), (100, 1000)):
        monkeypatch.setattr(search, "FIRST_WINDOW", first)
        monkeypatch.setattr(search, "WINDOW", window)
        for needle, limit in (("x", "150"), ("boundary", "2"), ("alpha", "64")):
            _walk(fast, scanned, text, [("_q", needle), ("_limit", limit)])


def test_a_column_of_plain_values_has_no_copy(text: IngestResult) -> None:
    folder = text.path.parent / FOLDER
    meta = orjson.loads((folder / "meta.json").read_bytes())
    assert meta["plain"] == ["code"]
    cased = orjson.loads((folder / search.INDEX_FILE).read_bytes())
    assert sorted(cased["columns"]) == ["note", "title"]
    lines = (folder / cased["columns"]["title"]["file"]).read_text().split("\n")
    assert lines[500] == "bound\xffary" and lines[501] == "Boundary"  # as they are
    assert len(lines) == ROWS + 1


def test_block_starts_are_where_lines_start(
    text: IngestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offsets ingest reads back from each written file, whatever its read size."""
    for folder in (text.path.parent, text.path.parent / FOLDER):
        meta = orjson.loads((folder / search.INDEX_FILE).read_bytes())
        for entry in meta["columns"].values():
            data = (folder / entry["file"]).read_bytes()
            starts = [0, *(i + 1 for i, b in enumerate(data) if b == 10)][:-1]
            assert entry["starts"] == starts[:: search.BLOCK] and len(starts) == ROWS
            for size in (5, 4096):  # a line longer than a read; reads ending mid-line
                monkeypatch.setattr(search, "_READ", size)
                assert search._block_starts(folder / entry["file"], ROWS) == entry["starts"]
            with pytest.raises(OSError):
                search._block_starts(folder / entry["file"], ROWS + 1)


def test_an_inline_search_past_its_budget_is_asked_again(
    fast: Dataset, text: IngestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = _query(text, [("_q", "zzz")])
    assert fast.page_json(query, inline=True) is not None
    monkeypatch.setattr(indexed, "INLINE_SEARCH", -1.0)
    with pytest.raises(SearchUnfinished):
        fast.page_json(query, inline=True)
    assert fast.page_json(query, timeout_ms=10_000) is not None  # in a thread, unbounded


def test_an_older_store_is_rebuilt_not_misread(text: IngestResult, tmp_path: Path) -> None:
    """A format-2 store (no text as it is) is not opened: it is built again, and then
    `__contains` is answered from it."""
    shutil.copytree(text.path.parent, tmp_path / "v1")
    data = tmp_path / "v1" / text.path.name
    folder = data.parent / FOLDER
    meta = {**orjson.loads((folder / "meta.json").read_bytes()), "of": _of(data)}
    (folder / "meta.json").write_bytes(orjson.dumps(meta))
    assert RowStore.open(data) is not None  # the copy's own store opens
    for path in search.files(folder):
        path.unlink()
    del meta["plain"], meta["cased"]
    (folder / "meta.json").write_bytes(orjson.dumps({**meta, "format": 2}))
    assert RowStore.open(data) is None
    stores = RowStores(min_bytes=0)
    deadline = time.monotonic() + 60
    while (store := stores.get(str(data), text.columns)) is None:
        assert time.monotonic() < deadline, "the store was not rebuilt"
        time.sleep(0.05)
    assert store.text_as_is("title", None) is not None
    assert orjson.loads((folder / "meta.json").read_bytes())["format"] == 3


def _of(data: Path) -> list[int]:
    found = data.stat()
    return [found.st_size, found.st_mtime_ns, found.st_ino]


def _titles(text: IngestResult) -> list[str]:
    with (text.path.parent.parent / "text.csv").open(newline="", encoding="utf-8") as fh:
        return [row[1] for row in list(csv.reader(fh))[1:]]


def test_a_store_whose_text_copy_disagrees_is_not_opened(
    text: IngestResult, tmp_path: Path
) -> None:
    shutil.copytree(text.path.parent, tmp_path / "v1")
    data = tmp_path / "v1" / text.path.name
    folder = data.parent / FOLDER
    meta = orjson.loads((folder / "meta.json").read_bytes())
    (folder / "meta.json").write_bytes(orjson.dumps({**meta, "of": _of(data)}))
    assert RowStore.open(data) is not None
    index = orjson.loads((folder / search.INDEX_FILE).read_bytes())
    (folder / search.INDEX_FILE).write_bytes(orjson.dumps({**index, "rows": ROWS + 1}))
    assert RowStore.open(data) is None  # built again on first want, not read with wrong rows
