"""Rendering pages, and the OpenAPI document and docs page for a dataset."""

from __future__ import annotations

import csv
import io
import re

import orjson
import pytest

from claw402.datasets.docs_page import docs_html
from claw402.datasets.openapi import openapi, schema_document
from claw402.datasets.output import render
from claw402.datasets.pages import Page
from claw402.datasets.query import InvalidQuery
from claw402.datasets.schema import Column

PAGE = Page(
    ("id", "name", "amount", "ok", "day"),
    (
        (1, '=HYPERLINK("x")', -5, True, "2024-01-01"),
        (2, "+cmd", 1.5, False, None),
        (3, "-1", None, None, "2024-01-02"),
        (4, "@sum", 0, True, None),
        (5, "\tTab", 2, False, None),
        (6, 'plain, "quoted"\nline', 3, True, None),
    ),
    "abc.def",
)


def test_json():
    body, media = render(PAGE, "json")
    assert media == "application/json"
    data = orjson.loads(body)
    assert data["ok"] is True and data["next"] == "abc.def"
    assert data["items"][0] == {
        "id": 1,
        "name": '=HYPERLINK("x")',
        "amount": -5,
        "ok": True,
        "day": "2024-01-01",
    }
    assert orjson.loads(render(Page(("a",), ()), "json")[0]) == {
        "ok": True,
        "items": [],
        "next": None,
    }


def test_ndjson():
    body, media = render(PAGE, "ndjson")
    assert media == "application/x-ndjson"
    lines = body.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 7
    assert orjson.loads(lines[5])["name"] == 'plain, "quoted"\nline'


def test_csv_rfc4180_and_formula_neutralisation():
    body, media = render(PAGE, "csv")
    assert media == "text/csv; charset=utf-8"
    text = body.decode()
    assert text.startswith("id,name,amount,ok,day\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["1", '\'=HYPERLINK("x")', "-5", "true", "2024-01-01"]
    assert [r[1] for r in rows[2:6]] == ["'+cmd", "'-1", "'@sum", "'\tTab"]
    assert rows[3][2:] == ["", "", "2024-01-02"]  # NULLs are empty cells
    assert rows[6][1] == 'plain, "quoted"\nline'
    assert rows[2][2] == "1.5"


def test_unknown_format():
    with pytest.raises(InvalidQuery):
        render(PAGE, "xml")  # type: ignore[arg-type]


COLUMNS = [
    Column("id", "integer"),
    Column("price", "number"),
    Column("ok", "boolean"),
    Column("name", "string"),
    Column("day", "date"),
    Column("at", "timestamp"),
]


def test_openapi_document():
    spec = openapi(
        COLUMNS,
        title="Shop",
        description="Things",
        version="3",
        price_usd="0.001",
        key="id",
        server_url="https://api.example.com/t/shop",
    )
    assert spec["openapi"] == "3.1.0" and spec["servers"][0]["url"].endswith("/t/shop")
    assert set(spec["paths"]) == {"/v1/records", "/v1/records/{key}", "/v1/schema"}
    get = spec["paths"]["/v1/records"]["get"]
    params = {p["name"]: p for p in get["parameters"]}
    assert params["id"]["schema"]["type"] == "integer"
    assert params["price__gte"]["schema"]["type"] == "number"
    assert params["day__lt"]["schema"]["format"] == "date"
    assert params["ok"]["schema"]["type"] == "boolean"
    assert "name__icontains" in params and "id__contains" not in params
    assert params["at__in"]["explode"] is False
    assert params["_sort"]["schema"]["items"]["enum"][:2] == ["id", "-id"]
    assert params["_fields"]["schema"]["items"]["enum"] == [c.name for c in COLUMNS]
    assert params["_format"]["schema"]["enum"] == ["json", "csv", "ndjson"]
    assert {"_limit", "_cursor", "_q"} <= set(params)
    assert params["_count"]["schema"] == {"enum": ["exact"]}
    assert params["_facet"]["explode"] is True  # repeated: _facet=a&_facet=b
    assert params["_facet"]["schema"]["maxItems"] == 5
    assert "402" in get["responses"] and "400" in get["responses"]
    key = spec["paths"]["/v1/records/{key}"]["get"]
    assert key["parameters"][0]["schema"]["type"] == "integer" and "402" in key["responses"]
    record = spec["components"]["schemas"]["Record"]["properties"]
    assert record["at"]["type"] == ["string", "null"]
    orjson.dumps(spec)  # serialisable


def test_free_api_has_no_402_and_no_key_path():
    spec = openapi(
        COLUMNS, title="Free", description="", version="1", price_usd="0", key=None, server_url=None
    )
    assert "402" not in spec["paths"]["/v1/records"]["get"]["responses"]
    assert "/v1/records/{key}" not in spec["paths"] and "servers" not in spec
    with pytest.raises(ValueError, match="price_usd"):
        openapi(
            COLUMNS,
            title="x",
            description="",
            version="1",
            price_usd="cheap",
            key=None,
            server_url=None,
        )


def test_docs_page_is_self_contained():
    spec = openapi(
        COLUMNS,
        title="Shop <b>",
        description="Line one\n\nLine two",
        version="3",
        price_usd="0.001",
        key="id",
        server_url="https://api.example.com/t/shop",
    )
    page = docs_html(spec)
    assert page.startswith("<!doctype html>")
    assert "Shop &lt;b&gt;" in page and "<b>" not in page.split("<main>")[1].split("<h2>")[0]
    curl = "curl &#x27;https://api.example.com/t/shop/v1/records?_limit=10&amp;_sort=-id&#x27;"
    assert curl in page
    assert "/v1/records/1" in page and "$0.001" in page and "name__icontains" in page
    assert not re.search(r"(src|href)=['\"]?https?:", page)
    assert "<script" not in page


def test_schema_document():
    assert schema_document(COLUMNS[:1], key="id", rows=3) == {
        "ok": True,
        "columns": [{"name": "id", "type": "integer"}],
        "key": "id",
        "rows": 3,
    }


def test_render_puts_count_and_facets_after_next():
    page = Page(("a",), ((1,),), None)
    body, _ = render(page, "json", {"count": 7, "facets": {"a": [{"value": 1, "count": 7}]}})
    assert body == (
        b'{"ok":true,"items":[{"a":1}],"next":null,"count":7,'
        b'"facets":{"a":[{"value":1,"count":7}]}}'
    )
