"""Ingest on tiny real files: formats, names, types, encodings, keys, and broken files."""

from __future__ import annotations

import json

import duckdb
import pytest
from dshelpers import write_parquet

from claw402.datasets.engine import Engine
from claw402.datasets.ingest import DATA_FILE, IngestError, ingest
from claw402.datasets.query import parse_query
from claw402.datasets.schema import Column, normalise_names
from claw402.datasets.storage import COMPACT_FILE


def rows_of(result) -> list[dict]:
    engine = Engine()
    try:
        dataset = engine.open(result.path, result.columns, key=result.key)
        return dataset.records(parse_query([], result.columns, max_limit=1000)).items
    finally:
        engine.close()


def types(result) -> dict[str, str]:
    return {c.name: c.type for c in result.columns}


def test_csv_types_order_and_result(tmp_path, cities):
    assert cities.format == "csv" and cities.rows == 7 and cities.key == "id"
    assert cities.path == tmp_path / "v1" / COMPACT_FILE  # 7 rows: stored compactly
    assert cities.bytes == (tmp_path / "cities.csv").stat().st_size
    assert types(cities) == {
        "id": "integer",
        "city": "string",
        "country": "string",
        "population": "integer",
        "area": "number",
        "capital": "boolean",
        "founded": "date",
        "updated": "timestamp",
    }
    items = rows_of(cities)
    assert [r["id"] for r in items] == [1, 2, 3, 4, 5, 6, 7]
    assert items[1] == {
        "id": 2,
        "city": "Porto",
        "country": "Portugal",
        "population": 232000,
        "area": 41.42,
        "capital": False,
        "founded": None,
        "updated": "2024-01-03T11:30:00.250000",
    }
    assert items[0]["founded"] == "1147-10-25"
    assert [p.name for p in (tmp_path / "v1").iterdir()] == [COMPACT_FILE]
    full = ingest(tmp_path / "cities.csv", tmp_path / "v2", key="id", compact_rows=6)
    assert full.path == tmp_path / "v2" / DATA_FILE
    assert sorted(p.name for p in (tmp_path / "v2").iterdir()) == [
        DATA_FILE,
        "search-0.txt",
        "search-1.txt",
        "search.idx",
    ]
    assert rows_of(full) == items  # the same rows, whatever the layout
    assert (tmp_path / "v1" / COMPACT_FILE).stat().st_size < 8192


def test_a_new_ingest_replaces_the_other_layout(tmp_path, cities):
    again = ingest(tmp_path / "cities.csv", tmp_path / "v1", key="id", compact_rows=0)
    assert sorted(p.name for p in (tmp_path / "v1").iterdir())[0] == DATA_FILE
    assert not (tmp_path / "v1" / COMPACT_FILE).exists()
    assert len(rows_of(again)) == 7
    ingest(tmp_path / "cities.csv", tmp_path / "v1", key="id")
    assert [p.name for p in (tmp_path / "v1").iterdir()] == [COMPACT_FILE]


def test_dialects_bom_and_encodings(tmp_path):
    cases = {
        "semi.csv": b"a;b\n1;x\n2;y\n",
        "tab.tsv": b"a\tb\n1\tx\n2\ty\n",
        "pipe.txt": b"a|b\n1|x\n2|y\n",
        "bom.csv": b"\xef\xbb\xbfa,b\n1,x\n2,y\n",
        "crlf.csv": b"a,b\r\n1,x\r\n2,y\r\n",
        "quoted.csv": b'a,b\n1,"x"\n2,"y"\n',
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        fmt = "csv" if name.endswith(".txt") else None  # .txt names no format: say it
        result = ingest(tmp_path / name, tmp_path / name.replace(".", "_"), fmt=fmt)
        assert [c.name for c in result.columns] == ["a", "b"], name
        assert rows_of(result) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], name
    (tmp_path / "cp1252.csv").write_bytes("id,name\n1,café €\n2,naïve\n".encode("cp1252"))
    assert [r["name"] for r in rows_of(ingest(tmp_path / "cp1252.csv", tmp_path / "c"))] == [
        "café €",
        "naïve",
    ]
    (tmp_path / "latin1.csv").write_bytes(b"id,name\n1,\xe9\x81\n")
    assert rows_of(ingest(tmp_path / "latin1.csv", tmp_path / "l"))[0]["name"] == "é\x81"
    (tmp_path / "u16.csv").write_bytes("id,name\n1,żółw\n".encode("utf-16"))
    assert rows_of(ingest(tmp_path / "u16.csv", tmp_path / "u"))[0]["name"] == "żółw"


def test_quoted_fields_and_embedded_newlines(tmp_path):
    source = tmp_path / "q.csv"
    source.write_text('id,text\n1,"a, ""quoted""\nline"\n2,plain\n')
    assert rows_of(ingest(source, tmp_path / "v")) == [
        {"id": 1, "text": 'a, "quoted"\nline'},
        {"id": 2, "text": "plain"},
    ]


def test_header_is_sniffed(tmp_path):
    source = tmp_path / "nohead.csv"
    source.write_text("1,2.5,x\n3,4.5,y\n")
    result = ingest(source, tmp_path / "v")
    assert [c.name for c in result.columns] == ["column_1", "column_2", "column_3"]
    assert result.rows == 2


def test_names_are_normalised():
    assert normalise_names(
        [" id ", "", "a,b", "__private", "x__y", "-neg", "ID", "rowid", "id_2", "_", "a___b"]
    ) == [
        "id",
        "column_2",
        "a_b",
        "private",
        "x_y",
        "neg",
        "ID_2",
        "rowid_2",
        "id_2_2",
        "column_10",
        "a_b_2",
    ]


def test_csv_names_as_written(tmp_path):
    source = tmp_path / "names.csv"
    source.write_text('id,Name,name,__x,"a,b",,rowid\n1,a,b,c,d,e,z\n')
    result = ingest(source, tmp_path / "v", key="id")
    assert [c.name for c in result.columns] == [
        "id",
        "Name",
        "name_2",
        "x",
        "a_b",
        "column_6",
        "rowid_2",
    ]
    assert rows_of(result)[0] == {
        "id": 1,
        "Name": "a",
        "name_2": "b",
        "x": "c",
        "a_b": "d",
        "column_6": "e",
        "rowid_2": "z",
    }


def test_json_and_ndjson(tmp_path):
    records = [
        {"id": 1, "name": "a", "tags": ["x", "y"], "meta": {"k": 1}, "when": "2024-01-01"},
        {"id": 2, "name": None, "extra": True},
    ]
    (tmp_path / "a.json").write_text(json.dumps(records))
    (tmp_path / "b.ndjson").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    (tmp_path / "c.json").write_text("\n".join(json.dumps(r) for r in records))  # NDJSON in .json
    (tmp_path / "d.data").write_text(json.dumps(records))  # no telling extension: said
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    for name, fmt, declared in (
        ("a.json", "json", None),
        ("b.ndjson", "ndjson", None),
        ("c.json", "ndjson", None),
        ("d.data", "json", "json"),
        ("e.jsonl", "ndjson", None),
    ):
        result = ingest(tmp_path / name, tmp_path / name.replace(".", "_"), fmt=declared)
        assert result.format == fmt
        assert types(result) == {
            "id": "integer",
            "name": "string",
            "tags": "string",
            "meta": "string",
            "when": "date",
            "extra": "boolean",
        }
        first, second = rows_of(result)
        assert first["tags"] == '["x","y"]' and first["meta"] == '{"k":1}'
        assert second == {
            "id": 2,
            "name": None,
            "tags": None,
            "meta": None,
            "when": None,
            "extra": True,
        }


def test_parquet_types(tmp_path):
    source = tmp_path / "t.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 1::UBIGINT AS small_u, 18446744073709551615::UBIGINT AS big_u,
        1.25::DECIMAL(6,2) AS dec, 'nan'::DOUBLE AS nan, 'inf'::FLOAT AS inf,
        TIMESTAMPTZ '2024-01-01 10:00:00+02' AS tz, TIMESTAMP_NS '2024-01-01 00:00:00.123456789'
        AS ns, 'ab'::BLOB AS raw, '11:00'::TIME AS t, DATE 'infinity' AS forever,
        [1, 2] AS list) TO '{source}' (FORMAT parquet)"""
    )
    con.close()
    result = ingest(source, tmp_path / "v")
    assert result.format == "parquet"
    assert types(result) == {
        "small_u": "integer",
        "big_u": "string",
        "dec": "number",
        "nan": "number",
        "inf": "number",
        "tz": "timestamp",
        "ns": "timestamp",
        "raw": "string",
        "t": "string",
        "forever": "date",
        "list": "string",
    }
    assert rows_of(result) == [
        {
            "small_u": 1,
            "big_u": "18446744073709551615",
            "dec": 1.25,
            "nan": None,
            "inf": None,
            "tz": "2024-01-01T08:00:00",
            "ns": "2024-01-01T00:00:00.123457",
            "raw": "YWI=",
            "t": "11:00:00",
            "forever": None,
            "list": "[1,2]",
        }
    ]


def test_late_type_change_is_typed_from_the_whole_file(tmp_path):
    source = tmp_path / "late.csv"
    with source.open("w") as fh:
        fh.write("n,s\n")
        fh.writelines(f"{i},x\n" for i in range(30000))
        fh.write("oops,y\n")
    result = ingest(source, tmp_path / "v")
    assert types(result) == {"n": "string", "s": "string"} and result.rows == 30001


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n", "ragged.csv line 3: expected 3 fields"),
        ("wide.csv", "a;b\n1;2\n3;4;5\n", "wide.csv line 3: expected 2 fields, found 3"),
        ("quote.csv", 'a,b\n1,"x\n2,y\n', "quote.csv line 2:"),
        ("empty.csv", "", "empty.csv is empty"),
        ("blank.csv", "\n\n  \n", "blank.csv is empty"),
        ("bad.json", '[{"a": 1},\n{"a": }]', "bad.json line 2 column 7: invalid JSON"),
        ("bad.ndjson", '{"a": 1}\n\n{"a": 2}\nnope\n', "bad.ndjson line 4: invalid JSON"),
        ("scalars.json", "[1, 2]", "every item must be a JSON object"),
        ("nothing.json", "[]", "every item must be a JSON object"),
        ("fake.parquet", "PAR1 not really", "fake.parquet is not a readable Parquet file"),
        ("text.parquet", "hello", "not a valid Parquet file"),
    ],
)
def test_broken_files_name_the_problem_and_leave_nothing(tmp_path, name, content, message):
    source = tmp_path / name
    source.write_text(content)
    dest = tmp_path / "v"
    with pytest.raises(IngestError) as info:
        ingest(source, dest)
    assert message in str(info.value)
    assert not dest.exists()  # created by ingest, removed again


def test_late_broken_row_is_found_by_line(tmp_path):
    source = tmp_path / "late.csv"
    with source.open("w") as fh:
        fh.write("a,b\n")
        fh.writelines(f"{i},x\n" for i in range(50000))
        fh.write("1,2,3\n")
    with pytest.raises(IngestError, match=r"late.csv line 50002: expected 2 fields, found 3"):
        ingest(source, tmp_path / "v")
    assert not (tmp_path / "v").exists()


def test_missing_source(tmp_path):
    with pytest.raises(IngestError, match="cannot read"):
        ingest(tmp_path / "nope.csv", tmp_path / "v")
    with pytest.raises(IngestError, match="cannot read"):
        ingest(tmp_path, tmp_path / "v")


@pytest.mark.parametrize(
    ("content", "key", "message"),
    [
        ("id,x\n1,a\n2,b\n1,c\n", "id", "'1' appears in rows 1 and 3"),
        ("id,x\n1,a\n,b\n", "id", "empty in row 2"),
        ("id,x\n1,a\n", "nope", "key column 'nope' does not exist; columns are id, x"),
        ("id,x\n1.5,a\n", "id", "a key must be an integer, string or date column"),
    ],
)
def test_key_must_exist_be_unique_and_not_null(tmp_path, content, key, message):
    source = tmp_path / "k.csv"
    source.write_text(content)
    with pytest.raises(IngestError, match=message):
        ingest(source, tmp_path / "v", key=key)
    assert not (tmp_path / "v").exists()


def test_key_by_source_name_and_lookup(tmp_path, engine):
    source = tmp_path / "k.csv"
    source.write_text("Product ID,name\nA-1,x\nB-2,y\n")
    result = ingest(source, tmp_path / "v", key=" Product ID ")
    assert result.key == "Product ID"
    dataset = engine.open(result.path, result.columns, key=result.key)
    assert dataset.record("B-2") == {"Product ID": "B-2", "name": "y"}
    assert dataset.record("C-3") is None


def test_progress_reports_bytes(tmp_path):
    source = tmp_path / "p.csv"
    source.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(20000)))
    calls: list[tuple[int, int]] = []
    ingest(source, tmp_path / "v", progress=lambda done, total: calls.append((done, total)))
    size = source.stat().st_size
    assert calls[0] == (0, size) and calls[-1] == (size, size)
    assert all(0 <= d <= t == size for d, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_parquet_columns_roundtrip(tmp_path):
    empty = write_parquet(tmp_path / "e.parquet", [("a", "integer")], [])
    with pytest.raises(IngestError, match=r"no rows .*--allow-empty"):
        ingest(empty, tmp_path / "v")
    assert not (tmp_path / "v").exists()  # refused: nothing left
    result = ingest(empty, tmp_path / "v", allow_empty=True)
    assert result.rows == 0 and result.columns == [Column("a", "integer")]


def test_no_row_is_taken_for_a_comment(tmp_path):
    source = tmp_path / "hash.csv"
    source.write_text("a,b\n#1,x\n2,y\n# not a comment,z\n")
    assert [r["a"] for r in rows_of(ingest(source, tmp_path / "v"))] == [
        "#1",
        "2",
        "# not a comment",
    ]


def test_dates_in_other_formats(tmp_path):
    source = tmp_path / "dmy.csv"
    source.write_text("a,d\n1,31/01/2020\n2,01/02/2020\n")
    result = ingest(source, tmp_path / "v")
    assert types(result)["d"] == "date"
    assert [r["d"] for r in rows_of(result)] == ["2020-01-31", "2020-02-01"]


def test_a_file_whose_extension_names_no_format_needs_one(tmp_path):
    for name in ("notes.txt", "export"):
        (tmp_path / name).write_text("a,b\n1,x\n")
        with pytest.raises(IngestError, match=r"names none of the formats.*--format csv\|json"):
            ingest(tmp_path / name, tmp_path / "v")
        assert not (tmp_path / "v").exists()
        assert rows_of(ingest(tmp_path / name, tmp_path / name.upper(), fmt="csv")) == [
            {"a": 1, "b": "x"}
        ]
    with pytest.raises(IngestError, match="unknown format 'xml': choose one of csv, json"):
        ingest(tmp_path / "notes.txt", tmp_path / "v", fmt="xml")
    with pytest.raises(IngestError, match="not a valid Parquet file"):
        ingest(tmp_path / "notes.txt", tmp_path / "v", fmt="parquet")
