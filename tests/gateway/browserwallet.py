"""A person's browser wallet for the paywall page, shared by the gateway's and the edge's
pay-through-the-page tests (`test_browser_pay.py`, `test_browser_edge_pay.py`).

The wallet is an EIP-1193 provider injected before the page loads (`window.ethereum`): it
answers for one of anvil's unlocked dev accounts and forwards everything else, the EIP-712
signature included, to anvil's JSON-RPC. The page checks the payer's balance over viem's RPC
URL for chain 31337 (anvil's default 127.0.0.1:8545; the package has no setting for it), so
the browser's requests there are routed to the test's anvil, which runs on a free port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route
from test_browser import screenshot

from claw402.chain.devchain import DevChain
from claw402.config import Settings

VIEM_ANVIL_RPC = "http://127.0.0.1:8545/"  # viem's `anvil` chain (id 31337): its only RPC URL

# The wallet: `request({method, params})` as EIP-1193 says, for the one account `payer`; with
# `refuse` its user declines to sign (EIP-1193's 4001).
WALLET = """
(({rpc, payer, chainId, refuse}) => {
  let id = 0;
  const forward = async (method, params) => {
    const answer = await fetch(rpc, {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({jsonrpc: "2.0", id: ++id, method, params: params || []})});
    const body = await answer.json();
    if (body.error) throw Object.assign(new Error(body.error.message), {code: body.error.code});
    return body.result;
  };
  window.ethereum = {
    async request({method, params}) {
      switch (method) {
        case "eth_requestAccounts": case "eth_accounts": return [payer];
        case "eth_chainId": return chainId;
        case "wallet_switchEthereumChain":
          if (params[0].chainId.toLowerCase() === chainId) return null;
          throw Object.assign(new Error("Unrecognized chain"), {code: 4902});
        case "eth_signTypedData_v4":
          if (refuse) throw Object.assign(new Error("User rejected the request."), {code: 4001});
          return forward(method, params);
        case "wallet_requestPermissions": case "wallet_getPermissions":
          return [{parentCapability: "eth_accounts"}];
        default: return forward(method, params);
      }
    },
    on() {}, removeListener() {},
  };
})
"""


def creator_balance(settings: Settings, slug: str) -> int:
    """What the creator sees: `402claw balance --tenant SLUG --json`, available atomic."""
    return int(cli(settings, "balance", "--tenant", slug)["balance"]["availableAtomic"])


def cli(settings: Settings, *args: str) -> dict[str, Any]:
    """`402claw ARGS --json` on `settings`' home, as a person in another terminal runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    env["CLAW402_HOME"] = str(settings.home)
    command = Path(sys.executable).with_name("402claw")
    done = subprocess.run([command, *args, "--json"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)


def to_anvil(rpc_url: str) -> Callable[[Route], None]:
    """Route the page's reads of viem's default anvil RPC to this test's anvil."""

    def forward(route: Route) -> None:
        answer = route.fetch(url=rpc_url)
        headers = {**answer.headers, "access-control-allow-origin": "*"}
        route.fulfill(response=answer, headers=headers)

    return forward


@dataclass
class PageLog:
    asked: list[str] = field(default_factory=list)  # JSON-RPC methods the wallet asked anvil
    console: list[str] = field(default_factory=list)  # the page's console (its status lines)
    paid: list[str] = field(default_factory=list)  # URLs the page requested with a payment


def with_wallet(page: Page, chain: DevChain, payer: str, *, refuse: bool = False) -> PageLog:
    """Give `page` the wallet of `payer`, and log what it asks anvil (`eth_signTypedData_v4`
    is the signature), what the page says on its console and what it requests paying."""
    wallet = {
        "rpc": chain.rpc_url,
        "payer": payer,
        "chainId": hex(chain.chain_id),
        "refuse": refuse,
    }
    page.add_init_script(script=f"{WALLET}({json.dumps(wallet)});")
    page.route(f"{VIEM_ANVIL_RPC}**", to_anvil(chain.rpc_url))
    log = PageLog()
    page.on("request", lambda r: r.url.startswith(chain.rpc_url)
            and log.asked.append(json.loads(r.post_data or "{}").get("method")))  # fmt: skip
    page.on("console", lambda message: log.console.append(message.text))
    page.on("request", lambda r: "payment-signature" in r.headers and log.paid.append(r.url))
    return log


def pay_through_the_page(page: Page, url: str, folder: Path, payer: str, name: str) -> None:
    """The page's own controls: pick the browser wallet, connect, check the terms, pay."""
    answer = page.goto(url)
    assert answer is not None and answer.status == 402
    page.get_by_text("Payment Required").first.wait_for(timeout=30_000)
    page.select_option("#root select", "injected")
    page.get_by_role("button", name="Connect wallet").click()
    pay = page.get_by_role("button", name="Pay now")
    pay.wait_for(timeout=30_000)
    card = page.inner_text("#payment-section")
    assert f"{payer[:6]}...{payer[-4:]}" in card and "$0.001 USD Coin" in card, card
    assert "Anvil" in card, card  # viem's name for chain 31337
    screenshot(page, folder, f"{name}-connected")
    pay.click()


def paid_json(page: Page, log: PageLog, folder: Path, name: str) -> dict[str, Any]:
    """The paid answer the page ends on (the response shown as a `blob:` document)."""
    try:
        page.wait_for_url(lambda address: address.startswith("blob:"), timeout=60_000)
    except Exception:
        screenshot(page, folder, f"{name}-failed")
        status = page.locator("#root .status").all_inner_texts()
        raise AssertionError(f"no paid page: {status} {log.console[-5:]}") from None
    data = json.loads(page.inner_text("body"))
    screenshot(page, folder, f"{name}-paid")
    return data
