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
from test_browser import axe_violations, browser, screenshot, shots  # noqa: F401 (fixtures)

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

    page = browser.new_page()
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    answer = page.goto(url)
    assert answer is not None and answer.status == 402
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["payment-required"] == api.headers["payment-required"]
    page.get_by_text("Payment Required").first.wait_for(timeout=30_000)
    card = page.inner_text("#root")
    assert "$0.001" in card and "World cities: one API call" in card
    terms = page.inner_text("section[aria-label='What this payment buys']")
    assert "0.001 USD Coin per call" in terms
    assert "eip155:31337" in terms and f"{origin}/t/cities/v1/records" in terms
    assert page.evaluate("() => window.x402.amount") == 0.001
    assert page.evaluate("() => window.x402.currentUrl") == f"{origin}/t/cities/v1/records"
    assert page.evaluate("() => window.x402.paymentRequired.accepts[0].network") == ("eip155:31337")
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert scripts and all(s.startswith(f"{origin}/_claw402/paywall/") for s in scripts)
    assert any(u.startswith(f"{origin}/_claw402/paywall/") for u in loaded)  # no CDN
    assert all(u.startswith(origin) for u in loaded), loaded
    screenshot(page, shots, "edge-paywall")
    page.close()


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
