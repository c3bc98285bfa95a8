"""`_count=exact` and `_facet=col` on both runtimes: the same bytes as the datasets layer."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

from claw402.datasets.engine import Engine
from claw402.datasets.facets import summary
from claw402.datasets.output import render
from claw402.datasets.query import FACET_SIZE, InvalidQuery, parse_query
from claw402.datasets.schema import Column
from claw402.dispatch.plans import max_page_size


def expected(tenant, params):
    version = tenant.dataset
    columns = [Column.from_dict(c) for c in version.columns]
    engine = Engine(cache_rows=0)
    try:
        dataset = engine.open(
            version.data_path, columns, key=version.key, version=str(version.version)
        )
        query = parse_query(
            params, columns, max_limit=max_page_size(tenant.plan), version=str(version.version)
        )
        body, _ = render(dataset.records(query), query.format, summary(dataset, query))
    except InvalidQuery as exc:
        return 400, exc.detail
    finally:
        engine.close()
    return 200, body


CASES = [
    [("_count", "exact")],
    [("_count", "exact"), ("_limit", "2")],
    [("country", "Japan"), ("_count", "exact")],
    [("continent", "Asia"), ("_facet", "country"), ("_count", "exact"), ("_limit", "1")],
    [("_facet", "continent"), ("_facet", "capital"), ("_sort", "-population")],
    [("_facet", "country")],  # many ties at 1: broken by value
    [("_q", "an"), ("_facet", "continent"), ("_count", "exact")],
    [("population__gt", "99999999999"), ("_count", "exact"), ("_facet", "city")],  # nothing
    [("_facet", "latitude"), ("_facet", "population"), ("_limit", "1")],
    [("city__icontains", "san"), ("_facet", "country"), ("_count", "exact")],
]

INVALID = [
    ([("_count", "yes")], "_count takes exact, not 'yes'"),
    ([("_facet", "nope")], "_facet: unknown column 'nope'"),
    ([("_facet", "city"), ("_facet", "city")], "_facet lists a column twice"),
    (
        [("_facet", c) for c in ("id", "city", "country", "continent", "capital", "population")],
        "too many _facet: at most 5",
    ),
    ([("_count", "exact"), ("_format", "csv")], "_count and _facet need the json format"),
    ([("_count", "exact"), ("_count", "exact")], "_count given more than once"),
]


def url(params):
    return f"/t/cities/v1/records?{urlencode(params, quote_via=quote, safe='')}"


@pytest.mark.parametrize("params", CASES)
def test_count_and_facets_match_the_datasets_layer(runtime, params):
    status, body = expected(runtime.tenants["cities"], params)
    assert status == 200, body
    r = runtime.get(url(params))
    assert r.status_code == 200, r.text
    assert r.content == body
    answer = r.json()
    if ("_count", "exact") in params:
        assert isinstance(answer["count"], int) and answer["count"] >= len(answer["items"])
    for _, column in (p for p in params if p[0] == "_facet"):
        counts = [f["count"] for f in answer["facets"][column]]
        assert counts == sorted(counts, reverse=True) and len(counts) <= FACET_SIZE
        if "count" in answer:
            assert sum(counts) <= answer["count"]


def test_count_is_the_total_and_facets_add_up(runtime):
    answer = runtime.get(
        url([("_count", "exact"), ("_facet", "continent"), ("_limit", "1")])
    ).json()
    assert answer["count"] == 50 and len(answer["items"]) == 1 and answer["next"]
    assert sum(f["count"] for f in answer["facets"]["continent"]) == 50
    asia = runtime.get(url([("continent", "Asia"), ("_count", "exact")])).json()["count"]
    assert {"value": "Asia", "count": asia} in answer["facets"]["continent"]
    # The count does not depend on the page: the next page says the same.
    following = runtime.get(
        url([("_count", "exact"), ("_limit", "1"), ("_cursor", answer["next"])])
    ).json()
    assert following["count"] == 50


@pytest.mark.parametrize(("params", "detail"), INVALID)
def test_invalid_count_and_facets_are_400(runtime, params, detail):
    status, expected_detail = expected(runtime.tenants["cities"], params)
    assert status == 400 and expected_detail.startswith(detail)
    r = runtime.get(url(params))
    assert r.status_code == 400
    assert r.json()["detail"] == expected_detail
