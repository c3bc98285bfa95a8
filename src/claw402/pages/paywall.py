"""The x402 paywall page (`@x402/paywall` from npm) for a browser that opens a paid URL.

An API client gets the JSON 402; a person gets the paywall's page, which shows the price, the
network and the resource and can connect a wallet and pay. The page comes from the npm
package's EVM handler, run once with node (`paywall.mjs`); its application script is served
from our own origin (`/_claw402/paywall/<hash>.js`, immutable) instead of inline in every 402,
and the per-offer `window.x402` configuration is written here the way the package's
`getEvmPaywallHtml` writes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jinja2.utils import htmlsafe_json_dumps
from markupsafe import escape

from claw402.nodetools import node_modules

ASSET_PREFIX = "/_claw402/paywall/"  # not a tenant path: slugs never start with "_"
SCRIPT = Path(__file__).with_name("paywall.mjs")
# The package's `getChainConfig()`: the USDC it knows by network name.
CHAIN_CONFIG = {
    "base": {"usdcAddress": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "usdcName": "USDC"},
    "base-sepolia": {
        "usdcAddress": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "usdcName": "USDC",
    },
}
TESTNETS = ("eip155:84532", "eip155:31337")  # Base Sepolia and the dev chain
_MODULE_SCRIPT = re.compile(r'<script type="module">(.*?)</script>', re.S)
_CONFIG_SCRIPT = re.compile(r"\s*<script>\s*window\.x402 = .*?</script>\s*(?=</head>)", re.S)


class PaywallUnavailable(RuntimeError):
    """The npm package could not be loaded (not installed, or node missing)."""


@dataclass(frozen=True)
class PaywallAssets:
    page: str  # the template, its application script replaced by a reference to `script`
    script: bytes
    script_name: str  # `<hash>.js`


@cache
def assets() -> PaywallAssets:
    """The package's page, split once into the page and its script (a few MB of JS)."""
    try:
        proc = subprocess.run(
            ["node", str(SCRIPT), str(node_modules())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired, RuntimeError) as exc:
        raise PaywallUnavailable(f"cannot run the paywall package: {exc}") from None
    if proc.returncode != 0:
        raise PaywallUnavailable(f"@x402/paywall failed: {proc.stderr.strip()[-500:]}")
    page = _CONFIG_SCRIPT.sub("", proc.stdout, count=1)
    found = _MODULE_SCRIPT.search(page)
    if found is None:
        raise PaywallUnavailable("@x402/paywall's page has no application script")
    script = found.group(1).encode()
    name = hashlib.sha256(script).hexdigest()[:20] + ".js"
    tag = f'<script type="module" src="{ASSET_PREFIX}{name}"></script>'
    return PaywallAssets(page[: found.start()] + tag + page[found.end() :], script, name)


def decimals(network: str) -> int:
    """The package's `getDefaultTokenDecimals`: USDC's 6 unless it knows better (it knows
    18 for two chains 402claw does not serve)."""
    return 6


@lru_cache(maxsize=256)  # per offer and resource, like the prepared 402s
def paywall_html(payment_required_header: str, *, app_name: str = "402claw") -> str | None:
    """The page for a 402's `PAYMENT-REQUIRED` header; None when it offers no EVM `exact`
    payment (the paywall signs only those: a channel-only tenant keeps its JSON 402)."""
    required: dict[str, Any] = json.loads(base64.b64decode(payment_required_header))
    exact = [
        a
        for a in required.get("accepts", [])
        if a.get("scheme") == "exact" and str(a.get("network", "")).startswith("eip155:")
    ]
    if not exact:
        return None
    required = {**required, "accepts": exact}  # the page pays its first offer
    requirement = exact[0]
    atomic = requirement.get("amount") or requirement.get("maxAmountRequired") or "0"
    amount = Decimal(int(atomic)).scaleb(-decimals(requirement["network"]))
    resource = required.get("resource") or {}
    config = (
        "\n  <script>\n    window.x402 = {"
        f"\n      amount: {format(amount.normalize(), 'f')},"
        f"\n      paymentRequired: {htmlsafe_json_dumps(required)},"
        f"\n      testnet: {'true' if requirement['network'] in TESTNETS else 'false'},"
        # Paying re-fetches `currentUrl`: the address the person opened, query included (the
        # 402's resource URL has no query, so paying it would buy a different answer).
        "\n      currentUrl: window.location.href,"
        f"\n      config: {{ chainConfig: {htmlsafe_json_dumps(CHAIN_CONFIG)} }},"
        f"\n      appName: {htmlsafe_json_dumps(app_name)},"
        '\n      appLogo: "",'
        "\n    };\n  </script>\n"
    )
    page = assets().page.replace("</head>", config + "</head>", 1)
    return page.replace('<div id="root"></div>', _root() + _terms(requirement, amount, resource), 1)


def _root() -> str:
    return '<main><div id="root"></div>'


def _terms(requirement: dict[str, Any], amount: Decimal, resource: dict[str, Any]) -> str:
    """What the payment buys, said on the page itself (the package's card names only the
    price): the network, the token and the resource, readable without the script."""
    name = (requirement.get("extra") or {}).get("name") or "USDC"
    rows = (
        ("Price", f"{format(amount.normalize(), 'f')} {name} per call"),
        ("Network", _network_name(requirement["network"])),
        ("Resource", resource.get("url", "")),
        ("What it is", resource.get("description", "")),
        ("Pay to", requirement.get("payTo", "")),
    )
    items = "".join(
        f'<dt style="font-weight:600">{escape(k)}</dt><dd>{escape(v)}</dd>' for k, v in rows if v
    )
    return (
        '<section class="claw402-terms" aria-label="What this payment buys" style="max-width:32rem;'
        'margin:1rem auto;padding:0 1rem;font:14px/1.5 system-ui,sans-serif;color:#1f2937">'
        f"<dl>{items}</dl></section></main>"
    )


def _network_name(network: str) -> str:
    known = {"eip155:8453": "Base", "eip155:84532": "Base Sepolia", "eip155:31337": "dev chain"}
    return f"{known[network]} ({network})" if network in known else network
