"""No request, however malformed, makes the gateway answer 5xx (over real HTTP)."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = [
    "id",
    "city",
    "population",
    "capital",
    "latitude",
    "nope",
    "_sort",
    "_fields",
    "_limit",
    "_cursor",
    "_q",
    "_format",
    "_x",
    "",
    "city__in",
    "population__gt",
    "capital__isnull",
    "city__icontains",
    "id__bogus",
    "latitude__lte",
    "__",
    "city__",
]
text = st.text(min_size=0, max_size=40)
params = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), text), text), max_size=6)
paths = st.sampled_from(
    [
        "/v1/records",
        "/v1/records/1",
        "/v1/records/%00",
        "/v1/schema",
        "/docs",
        "/v1/openapi.json",
        "/v1/records/",
        "/x",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=paths, query=params)
def test_no_input_gives_a_500(served_cities, path, query):
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    r = served_cities.client.get(f"/t/cities{path}?{qs}")
    assert r.status_code < 500, (path, query, r.text)
    assert r.headers["content-type"].split(";")[0] in (
        "application/json",
        "text/csv",
        "application/x-ndjson",
        "text/html",
    )
