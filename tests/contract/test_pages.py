"""Pages for people, the same on both runtimes: a browser's 402 is the x402 paywall page (the one
`pages.paywall` renders for that 402's PAYMENT-REQUIRED), its script comes from the runtime's
own origin, and `GET /` on a host that is no tenant's is the catalogue, with its ETag and 304.

Priced with payment settings (no facilitator: nothing here gets as far as verifying), unlike the
shared contract runtimes whose priced tenant has no payment network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway
from claw402.pages.paywall import ASSET_PREFIX, assets, paywall_html
from claw402.pages.render import catalogue, catalogue_html
from claw402.payments.config import PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ADDRESS = "0x" + "11" * 20
CONFIG = PaymentConfig(
    network="eip155:31337", asset=ADDRESS, asset_name="USD Coin", asset_version="2",
    facilitator_url="http://127.0.0.1:9", treasury=ADDRESS,  # unreachable: never called here
)  # fmt: skip
TENANTS = [
    {"slug": "cities", "source": CITIES, "price": "0.001", "key": "id",
     "name": "World <cities> & co", "description": "Fifty large cities, \"quoted\" & <b>bold</b>"},
    {"slug": "free-cities", "source": CITIES, "price": "0"},
    {"slug": "hidden", "source": CITIES, "price": "0.002", "listed": False},
    {"slug": "hosted", "source": CITIES, "price": "0.003", "hosts": ["hosted.pages.test"]},
]  # fmt: skip


class Served:
    def __init__(self, name: str, client: httpx.Client, tenants: list[Tenant]) -> None:
        self.name, self.client, self.tenants = name, client, tenants
        self.origin = str(client.base_url).rstrip("/")


@pytest.fixture(scope="module", params=["gateway", "workerd"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:  # fmt: skip
    home: Path = tmp_path_factory.mktemp("pages")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    tenants = [deploy(registry, settings, DeployRequest(**spec)) for spec in TENANTS]
    try:
        if request.param == "gateway":
            app = Gateway(
                registry,
                guard=Paywall(CONFIG, registry.engine),
                sink=EventSink.in_process(registry.engine, interval=0.02),
            )
            with (
                ServerThread(app) as server,
                httpx.Client(base_url=server.url, timeout=30) as client,
            ):
                yield Served("gateway", client, tenants)
        else:
            dispatcher = build_dispatcher(tenants, DispatcherOptions(payment=CONFIG))
            with (
                LocalEdge(dispatcher, [build_tenant(t) for t in tenants], start_timeout=60) as edge,
                httpx.Client(base_url=edge.url, timeout=30) as client,
            ):
                yield Served("workerd", client, tenants)
    finally:
        registry.close()


def required_of(r: httpx.Response) -> dict:
    return json.loads(base64.b64decode(r.headers["payment-required"]))


@pytest.mark.parametrize(
    "path", ["/t/cities/v1/records?country=Japan", "/t/cities/v1/records/1", "/t/hidden/v1/records"]
)
def test_a_browser_gets_the_paywall_page_an_api_client_the_json_402(served, path):
    api = served.client.get(path)
    assert api.status_code == 402 and api.json()["error"] == "payment_required"
    assert api.headers["content-type"].startswith("application/json")

    page = served.client.get(path, headers={"accept": BROWSER})
    assert page.status_code == 402
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store" and page.headers["vary"] == "Accept"
    assert page.headers["access-control-allow-origin"] == "*"
    assert "payment-required" in page.headers["access-control-expose-headers"].lower()
    header = page.headers["payment-required"]
    assert required_of(page) == required_of(api)
    # The page is exactly what pages.paywall makes of this 402, byte for byte.
    assert page.text == paywall_html(header)
    assert f'src="{ASSET_PREFIX}{assets().script_name}"' in page.text
    resource = required_of(page)["resource"]["url"]
    assert resource.startswith(f"{served.origin}{path.split('?')[0]}")


def test_the_page_escapes_what_the_request_names(served):
    path = "/t/cities/v1/records/%3Cscript%3E'%22&x%C3%A9"  # a key with <, ', ", & and é
    page = served.client.get(path, headers={"accept": BROWSER})
    assert page.status_code == 402
    assert page.text == paywall_html(page.headers["payment-required"])
    assert "<script>'" not in page.text and "&lt;script&gt;&#39;&#34;&amp;x" in page.text


def test_the_page_script_is_served_from_the_same_origin(served):
    found = assets()
    asset = served.client.get(ASSET_PREFIX + found.script_name)
    assert asset.status_code == 200 and asset.content == found.script
    assert asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    missing = served.client.get(ASSET_PREFIX + "nope.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_host_root_is_the_catalogue_of_listed_tenants(served):
    listed = [t for t in served.tenants if t.listed]
    as_json = served.client.get("/")
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    assert as_json.json() == {"ok": True, "tenants": catalogue(listed, served.origin)}
    assert {t["slug"] for t in as_json.json()["tenants"]} == {"cities", "free-cities", "hosted"}

    page = served.client.get("/", headers={"accept": BROWSER})
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text == catalogue_html(catalogue(listed, served.origin), served.origin + "/")
    assert "World &lt;cities&gt; &amp; co" in page.text
    assert served.client.get("/?format=json", headers={"accept": BROWSER}).json()["ok"]
    for r in (as_json, page):
        tag = r.headers["etag"]
        assert tag.startswith('"') and len(tag) == 34 and r.headers["vary"] == "Accept"
        assert r.headers["cache-control"] == "public, max-age=60"
        again = served.client.get(
            "/", headers={"accept": r.request.headers["accept"], "if-none-match": f'"x", W/{tag}'}
        )
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag
    assert as_json.headers["etag"] != page.headers["etag"]


def test_a_tenant_host_root_is_its_page_not_the_catalogue(served):
    r = served.client.get("/", headers={"host": "hosted.pages.test", "accept": BROWSER})
    assert r.status_code == 200 and "Data APIs on this gateway" not in r.text
    assert "hosted" in r.text and "<td>Tokyo</td>" in r.text
