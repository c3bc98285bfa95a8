"""The paywall page's HTML: what it is given is written safely, and only `exact` is shown."""

from __future__ import annotations

import base64
import json

from claw402.pages.paywall import ASSET_PREFIX, assets, paywall_html

EXACT = {
    "scheme": "exact",
    "network": "eip155:84532",
    "amount": "2500",
    "asset": "0xabc",
    "payTo": "0x" + "22" * 20,
    "maxTimeoutSeconds": 60,
    "extra": {"name": "USDC", "version": "2"},
}
BATCH = {**EXACT, "scheme": "batch-settlement"}


def header(accepts, description="</script><script>alert(1)</script>"):
    required = {
        "x402Version": 2,
        "accepts": accepts,
        "resource": {
            "url": "https://api.example/t/a/v1/records",
            "description": description,
            "mimeType": "application/json",
        },
    }
    return base64.b64encode(json.dumps(required).encode()).decode()


def test_a_channel_only_offer_has_no_page():
    assert paywall_html(header([BATCH])) is None


def test_the_page_pays_the_exact_offer_and_escapes_what_it_shows():
    page = paywall_html(header([BATCH, EXACT]))
    assert page is not None
    assert "amount: 0.0025," in page and "testnet: true," in page
    assert "<script>alert(1)" not in page  # neither in the config nor in the terms
    assert "\\u003c/script\\u003e" in page and "&lt;/script&gt;" in page
    config = page[page.index("paymentRequired: ") + 17 : page.index(",\n      testnet")]
    assert [a["scheme"] for a in json.loads(config)["accepts"]] == ["exact"]
    assert "Base Sepolia (eip155:84532)" in page and "0.0025 USDC per call" in page
    # The package's application script is referenced, not inlined: the page stays small.
    assert f'src="{ASSET_PREFIX}{assets().script_name}"' in page
    assert len(page) < 20_000 < len(assets().script)
