"""`GET /.well-known/x402`: the paid resources of a host, with the live 402's own terms."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from gwpriced import ADDRESS, priced_gateway

from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES


def _accepts_of_402(client, path: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.get(path)
    assert r.status_code == 402
    return json.loads(base64.b64decode(r.headers["payment-required"]))["accepts"]


def test_the_gateway_lists_every_priced_tenant_with_its_402_terms(tmp_path: Path) -> None:
    with priced_gateway(tmp_path) as (settings, registry, _app, client):
        deploy(registry, settings, DeployRequest(source=CITIES, slug="keyed", price="0.5",
                                                 key="id"))  # fmt: skip
        deploy(registry, settings, DeployRequest(source=CITIES, slug="free", price="0"))
        rows = DeployRequest(source=CITIES, slug="rows", price_per_1k_rows="0.05")
        deploy(registry, settings, rows)
        rows_402 = client.get("/t/rows/v1/records")
        r = client.get("/.well-known/x402")
        assert r.status_code == 200, r.text
        accepts = _accepts_of_402(client, "/t/cities/v1/records")
        again = client.get("/.well-known/x402", headers={"if-none-match": r.headers["etag"]})
        deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.003"))
        repriced = client.get("/.well-known/x402").json()
    manifest = r.json()
    assert manifest["x402Version"] == 2 and manifest["kind"] == "resource-server"
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["access-control-allow-origin"] == "*"
    base = str(client.base_url).rstrip("/")
    urls = [item["url"] for item in manifest["resources"]]
    assert urls == [
        f"{base}/t/cities/v1/records",
        f"{base}/t/keyed/v1/records",
        f"{base}/t/keyed/v1/records/:key",
        f"{base}/t/rows/v1/records",
    ]  # `free` sells nothing; `rows` is priced by rows, at a full page's price
    by_rows = manifest["resources"][3]
    assert (
        by_rows["accepts"]
        == json.loads(base64.b64decode(rows_402.headers["payment-required"]))["accepts"]
    )
    assert "per 1,000 rows" in by_rows["description"]
    cities = manifest["resources"][0]
    assert cities["method"] == "GET" and cities["accepts"] == accepts  # the 402's own terms
    (exact,) = [a for a in cities["accepts"] if a["scheme"] == "exact"]
    assert exact["amount"] == "1000" and exact["network"] == "eip155:31337"
    assert exact["payTo"] == ADDRESS and exact["asset"] == ADDRESS
    keyed = manifest["resources"][2]
    assert keyed["routeTemplate"] == "/t/keyed/v1/records/:key"
    assert keyed["accepts"][-1]["amount"] == "500000"
    assert again.status_code == 304 and again.content == b""
    assert repriced["resources"][0]["accepts"][-1]["amount"] == "3000"  # a new snapshot


def test_a_tenant_manifest_by_its_host_and_by_its_path(tmp_path: Path) -> None:
    with priced_gateway(tmp_path) as (_settings, _registry, _app, client):
        by_host = client.get("/.well-known/x402", headers={"host": "cities.test"})
        by_path = client.get("/t/cities/.well-known/x402")
        missing = client.get("/t/nope/.well-known/x402")
        posted = client.post("/.well-known/x402")
    assert [i["url"] for i in by_host.json()["resources"]] == ["http://cities.test/v1/records"]
    assert by_host.json()["docs"] == "http://cities.test/docs"
    base = str(client.base_url).rstrip("/")
    assert [i["url"] for i in by_path.json()["resources"]] == [f"{base}/t/cities/v1/records"]
    assert by_path.json()["name"] == "cities"
    assert missing.status_code == 404 and missing.json()["error"] == "tenant_not_found"
    assert posted.status_code == 405


def test_without_a_payment_network_the_entries_are_bare_pointers(served: Any) -> None:
    served.deploy(slug="cities", price="0.25")
    manifest = served.client.get("/.well-known/x402").json()
    (item,) = manifest["resources"]
    assert set(item) == {"url", "method", "description"}
    assert "$0.25" in item["description"]
