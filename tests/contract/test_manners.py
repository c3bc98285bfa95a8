"""Manners every web client expects, on both runtimes: CORS, no-store on 402s, ETags."""

from __future__ import annotations

import pytest

EXPOSED = {"payment-required", "payment-response", "x-request-id"}


def exposed(r):
    return {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}


def test_preflight_is_answered_on_any_tenant_path(runtime):
    r = runtime.client.options(
        "/t/paid/v1/records?country=Japan",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "payment-signature",
        },
    )
    assert r.status_code == 204 and r.content == b""
    assert r.headers["access-control-allow-origin"] == "*"
    assert "GET" in r.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"payment-signature", "x-payment", "x-request-id"} <= allowed
    assert int(r.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize(
    "path",
    [
        "/t/cities/v1/records?_limit=1",
        "/t/cities/v1/schema",
        "/t/paid/v1/records",
        "/t/cities/v1/records?nope=1",
        "/t/nobody/v1/records",
        "/t/cities/v1/records/999999",
    ],
)
def test_every_tenant_answer_allows_any_origin_and_exposes_x402_headers(runtime, path):
    r = runtime.get(path, headers={"origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert exposed(r) >= EXPOSED
    assert r.headers.get_list("access-control-expose-headers") == [
        r.headers["access-control-expose-headers"]
    ]  # one list, not the paywall's and ours


def test_a_402_is_never_stored(runtime):
    for _ in range(2):  # the second may be the gateway's memoised 402
        r = runtime.get("/t/paid/v1/records")
        assert r.status_code == 402
        assert r.headers["cache-control"] == "no-store"
    assert runtime.get("/t/paid/v1/records/1").headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    ["/t/cities/v1/schema", "/t/cities/v1/openapi.json", "/t/cities/docs", "/t/paid/v1/schema"],
)
def test_free_documents_are_cacheable_and_revalidated(runtime, path):
    first = runtime.get(path)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    assert "max-age" in first.headers["cache-control"]
    assert "no-store" not in first.headers["cache-control"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = runtime.get(path, headers={"if-none-match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert again.headers["access-control-allow-origin"] == "*"
    changed = runtime.get(path, headers={"if-none-match": '"stale"'})
    assert changed.status_code == 200 and changed.content == first.content
    assert changed.headers["etag"] == tag


def test_documents_of_different_tenants_have_different_tags(runtime):
    one = runtime.get("/t/cities/v1/schema").headers["etag"]
    other = runtime.get("/t/paid/v1/schema").headers["etag"]
    assert one != other
    assert runtime.get("/t/paid/v1/schema", headers={"if-none-match": one}).status_code == 200


def test_a_tenant_root_is_a_page_for_a_browser(runtime):
    browser = "text/html,application/xhtml+xml,*/*;q=0.8"
    page = runtime.get("/t/paid/", headers={"accept": browser})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["vary"] == "Accept" and page.headers["etag"]
    assert page.text.count("<tr><td>") == 5 and "<td>Tokyo</td>" in page.text
    assert f"{runtime.url}/t/paid/v1/records?_limit=5" in page.text
    assert "$0.0025" in page.text
    index = runtime.get("/t/paid/")
    assert index.headers["content-type"] == "application/json" and index.json()["ok"]
    again = runtime.get(
        "/t/paid/", headers={"accept": browser, "if-none-match": page.headers["etag"]}
    )
    assert again.status_code == 304


def test_the_host_root_is_the_catalogue(runtime):
    """Both runtimes: the edge's is rendered at build time (tests/contract/test_pages.py)."""
    r = runtime.get("/")
    assert r.status_code == 200
    assert {t["slug"] for t in r.json()["tenants"]} == set(runtime.tenants)
    assert r.headers["access-control-allow-origin"] == "*"
