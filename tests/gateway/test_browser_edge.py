"""The edge's pages in a real browser (Debian's Chromium, headless, Playwright): the dispatch
Worker under workerd serves the x402 paywall page with the right amount, network and resource,
its script from the Worker's own origin (no CDN), and a catalogue that passes axe-core.
Screenshots are kept under pytest's tmp folder (`screenshots*`), printed with `-s`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_browser import (  # noqa: F401 (browser and shots are fixtures)
    axe_violations,
    browser,
    check_paywall_page,
    screenshot,
    shots,
)

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.payments.config import PaymentConfig
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES

ADDRESS = "0x" + "11" * 20
CONFIG = PaymentConfig(
    network="eip155:31337", asset=ADDRESS, asset_name="USD Coin", asset_version="2",
    facilitator_url="http://127.0.0.1:9", treasury=ADDRESS,  # unreachable: never called here
)  # fmt: skip


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home: Path = tmp_path_factory.mktemp("edge-pages")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    try:
        tenants = [
            deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.001",
                                                     key="id", name="World cities")),
            deploy(registry, settings, DeployRequest(source=CITIES, slug="free-cities", price="0")),
        ]  # fmt: skip
        dispatcher = build_dispatcher(tenants, DispatcherOptions(payment=CONFIG))
        with (
            LocalEdge(dispatcher, [build_tenant(t) for t in tenants], start_timeout=60) as local,
            httpx.Client(base_url=local.url, timeout=30) as client,
        ):
            yield client
    finally:
        registry.close()


def test_the_edge_paywall_page_shows_amount_network_and_resource(browser, shots, edge):  # noqa: F811
    origin = str(edge.base_url).rstrip("/")
    url = f"{origin}/t/cities/v1/records?country=Japan"
    api = edge.get(url)  # an API client still gets the JSON 402
    assert api.status_code == 402 and api.json()["error"] == "payment_required"
    required = json.loads(base64.b64decode(api.headers["payment-required"]))
    assert required["accepts"][0]["amount"] == "1000"  # $0.001 in 6-decimal units

    scripts = check_paywall_page(browser, shots, url, api, "World cities: one API call",
                                 "edge-paywall")  # fmt: skip
    asset = edge.get(scripts[0].removeprefix(origin))
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]


def test_the_edge_catalogue_passes_axe(browser, shots, edge):  # noqa: F811
    origin = str(edge.base_url).rstrip("/")
    page = browser.new_page()
    answer = page.goto(f"{origin}/")
    assert answer is not None and answer.status == 200
    assert page.locator("tbody tr").count() == 2
    assert page.get_attribute("a[href$='/t/cities/']", "href") == f"{origin}/t/cities/"
    assert axe_violations(page) == []
    screenshot(page, shots, "edge-catalogue")
    page.close()
