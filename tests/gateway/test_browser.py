"""People's pages in a real browser: Debian's Chromium, headless, driven by Playwright.

The paywall page (`@x402/paywall`) must render the right amount, network and resource from
our own origin; the catalogue and a tenant's page must pass axe-core (labels, contrast,
structure) and work from the keyboard. Screenshots are kept under pytest's tmp folder
(`screenshots*`), printed with `-s`.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gwpriced import priced_gateway
from playwright.sync_api import Browser, Page, sync_playwright

from claw402.nodetools import node_modules

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: scripts/setup.sh installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def screenshot(page: Page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    print(f"screenshot: {path}")


def axe_violations(page: Page) -> list[dict]:
    page.add_script_tag(path=str(node_modules() / "axe-core" / "axe.min.js"))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "nodes": [n["html"] for n in v["nodes"]]} for v in result["violations"]]


def check_paywall_page(browser: Browser, shots: Path, url: str, api: httpx.Response,
                       description: str, name: str) -> list[str]:  # fmt: skip
    """Open a paid `url` ($0.001 on the dev chain) in Chromium: the paywall page with its
    amount, network and resource, its script from `url`'s origin; the scripts' URLs."""
    origin = url[: url.index("/t/")]
    resource = url.split("?")[0]
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
    assert "$0.001" in card and description in card
    terms = page.inner_text("section[aria-label='What this payment buys']")
    assert "0.001 USD Coin per call" in terms
    assert "eip155:31337" in terms and resource in terms
    assert page.evaluate("() => window.x402.amount") == 0.001
    assert page.evaluate("() => window.x402.currentUrl") == url  # what paying fetches
    assert page.evaluate("() => window.x402.paymentRequired.accepts[0].network") == ("eip155:31337")
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert scripts and all(s.startswith(f"{origin}/_claw402/paywall/") for s in scripts)
    assert any(u.startswith(f"{origin}/_claw402/paywall/") for u in loaded)  # no CDN
    assert all(u.startswith(origin) for u in loaded), loaded
    screenshot(page, shots, name)
    page.close()
    return scripts


def test_the_paywall_page_shows_amount_network_and_resource(browser, shots, tmp_path):
    with priced_gateway(tmp_path) as (_, _, _, client):
        origin = str(client.base_url).rstrip("/")
        url = f"{origin}/t/cities/v1/records?country=Japan"
        api = client.get(url)  # an API client still gets the JSON 402
        assert api.status_code == 402 and api.json()["error"] == "payment_required"
        required = json.loads(base64.b64decode(api.headers["payment-required"]))
        exact = next(a for a in required["accepts"] if a["scheme"] == "exact")
        assert exact["amount"] == "1000"  # $0.001 in 6-decimal units

        scripts = check_paywall_page(browser, shots, url, api, "cities: one API call", "paywall")
        asset = client.get(scripts[0].removeprefix(origin))
        assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
        assert client.get("/_claw402/paywall/nope.js").status_code == 404


def test_the_catalogue_and_a_tenant_page_pass_axe_and_the_keyboard(browser, shots, served):
    served.deploy(
        slug="cities",
        price="0.0025",
        key="id",
        name="World cities",
        description="Fifty large cities of the world",
    )
    served.deploy(slug="free-cities", price="0")
    origin = str(served.client.base_url).rstrip("/")
    page = browser.new_page()
    for name, url in (("catalogue", f"{origin}/"), ("tenant", f"{origin}/t/cities/")):
        answer = page.goto(url)
        assert answer is not None and answer.status == 200
        assert axe_violations(page) == [], name
        assert page.get_attribute("html", "lang") == "en"
        # Keyboard: the first Tab lands on the skip link, which is then visible; every link
        # and scrollable snippet is reachable with Tab alone.
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "skip"
        box = page.locator("a.skip").bounding_box()
        assert box is not None and box["x"] >= 0
        reached = set()
        for _ in range(60):
            page.keyboard.press("Tab")
            reached.add(
                page.evaluate(
                    "() => document.activeElement.getAttribute('href') "
                    "|| document.activeElement.getAttribute('aria-labelledby')"
                )
            )
        links = set(
            page.eval_on_selector_all("main a", "els => els.map(e => e.getAttribute('href'))")
        )
        assert links <= reached, links - reached
        screenshot(page, shots, name)
    assert "World cities" in page.inner_text("h1")
    assert page.locator("pre[tabindex='0']").count() == 4  # curl, 402claw call, Python, JS
    page.close()
