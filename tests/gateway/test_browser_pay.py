"""A person pays through the paywall page: headless Chromium, a wallet, the dev chain.

The page is `@x402/paywall` as the gateway serves it. The wallet is an EIP-1193 provider
injected before the page loads (`window.ethereum`): it answers for one of anvil's unlocked dev
accounts and forwards everything else, the EIP-712 signature included, to anvil's JSON-RPC.
The stack is the one `402claw dev` runs. The page checks the payer's balance over viem's RPC
URL for chain 31337 (anvil's default 127.0.0.1:8545; the package has no setting for it), so the
browser's requests there are routed to this test's anvil, which runs on a free port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, Route
from test_browser import browser, screenshot, shots  # noqa: F401 (fixtures)

from claw402.chain.devchain import DevChain
from claw402.config import Settings
from claw402.devstack import DevStack, start_dev_stack
from claw402.ledger.schema import ledger_transactions
from claw402.payments.schema import payments
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES

VIEM_ANVIL_RPC = "http://127.0.0.1:8545/"  # viem's `anvil` chain (id 31337): its only RPC URL
PRICE = 1000  # $0.001 in the token's 6-decimal units

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


@dataclass
class Dev:
    stack: DevStack
    settings: Settings
    url: str


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """The stack `402claw dev` runs (anvil + ClawUSD, the facilitator over HTTP, the paywalled
    gateway) serving `cities` at $0.001 a call, paid to the treasury: the creator's share
    shows in `402claw balance`."""
    home = tmp_path_factory.mktemp("browserpay")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    with start_dev_stack(settings, payers=1) as stack:
        deploy(stack.registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.001"))
        yield Dev(stack, settings, stack.gateway.url)


def creator_balance(settings: Settings) -> int:
    """What the creator sees: `402claw balance --tenant cities --json`, available atomic."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    env["CLAW402_HOME"] = str(settings.home)
    cli = Path(sys.executable).with_name("402claw")
    done = subprocess.run([cli, "balance", "--tenant", "cities", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["balance"]["availableAtomic"])


def settlements(dev: Dev) -> int:
    with dev.stack.registry.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one()


def to_anvil(rpc_url: str) -> Callable[[Route], None]:
    """Route the page's reads of viem's default anvil RPC to this test's anvil."""

    def forward(route: Route) -> None:
        answer = route.fetch(url=rpc_url)
        headers = {**answer.headers, "access-control-allow-origin": "*"}
        route.fulfill(response=answer, headers=headers)

    return forward


def with_wallet(page: Page, chain: DevChain, payer: str, *, refuse: bool = False) -> None:
    wallet = {
        "rpc": chain.rpc_url,
        "payer": payer,
        "chainId": hex(chain.chain_id),
        "refuse": refuse,
    }
    page.add_init_script(script=f"{WALLET}({json.dumps(wallet)});")
    page.route(f"{VIEM_ANVIL_RPC}**", to_anvil(chain.rpc_url))


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


def test_a_person_connects_a_wallet_and_pays_in_chromium(browser: Browser, shots, dev):  # noqa: F811
    chain = dev.stack.chain
    payer = chain.payers[0].address  # an anvil dev account: anvil itself signs for it
    url = f"{dev.url}/t/cities/v1/records?country=Japan"
    before = chain.balance(payer), chain.balance(chain.treasury.address)
    earned = creator_balance(dev.settings)

    page = browser.new_page()
    with_wallet(page, chain, payer)
    statuses: list[str] = []
    page.on("console", lambda message: statuses.append(message.text))
    wallet_calls: list[str] = []  # what the wallet asked anvil
    page.on("request", lambda r: r.url.startswith(chain.rpc_url)
            and wallet_calls.append(json.loads(r.post_data or "{}").get("method")))  # fmt: skip
    pay_through_the_page(page, url, shots, payer, "paywall-pay")
    try:
        # The page shows the paid answer (JSON: as a blob: document of the response).
        page.wait_for_url(lambda address: address.startswith("blob:"), timeout=60_000)
    except Exception:
        screenshot(page, shots, "paywall-pay-failed")
        status = page.locator("#root .status").all_inner_texts()
        raise AssertionError(f"no paid page: {status} {statuses[-5:]}") from None
    data = json.loads(page.inner_text("body"))
    screenshot(page, shots, "paywall-paid")
    page.close()
    assert "eth_signTypedData_v4" in wallet_calls, wallet_calls  # anvil signed for the payer
    # The answer to the address the person opened, query included.
    assert [row["city"] for row in data["items"]] == ["Tokyo", "Osaka", "Nagoya"], data

    # On chain: the payer paid exactly the price, to the treasury.
    assert chain.balance(payer) == before[0] - PRICE
    assert chain.balance(chain.treasury.address) == before[1] + PRICE
    # The creator's `402claw balance` rose by the price less the platform fee.
    assert creator_balance(dev.settings) - earned == PRICE * 95 // 100
    # The settled payment is recorded (payer, amount, a mined transaction) and booked in the
    # ledger under that transaction, for its gross amount.
    with dev.stack.registry.engine.connect() as conn:
        (row,) = conn.execute(sa.select(payments)).mappings().all()
        booked = conn.execute(
            sa.select(ledger_transactions.c.gross, ledger_transactions.c.payer).where(
                ledger_transactions.c.tx_hash == row["tx_hash"]
            )
        ).all()
    assert row["amount_atomic"] == PRICE and row["payer"].lower() == payer.lower()
    assert chain.web3().eth.get_transaction_receipt(row["tx_hash"])["status"] == 1
    assert [(gross, who.lower()) for gross, who in booked] == [(PRICE, payer.lower())]


def test_a_declined_signature_pays_nothing(browser: Browser, shots, dev):  # noqa: F811
    chain = dev.stack.chain
    payer = chain.payers[0].address
    before = chain.balance(payer), chain.balance(chain.treasury.address)
    settled = settlements(dev)
    page = browser.new_page()
    with_wallet(page, chain, payer, refuse=True)
    pay_through_the_page(page, f"{dev.url}/t/cities/v1/records", shots, payer, "paywall-decline")
    # The page says why, in its status line (after "Checking balance...", "Creating...").
    page.locator("#root .status", has_text="User rejected the request.").wait_for(timeout=30_000)
    assert page.url.startswith(dev.url)  # still the paywall page, no data shown
    screenshot(page, shots, "paywall-declined")
    page.close()
    assert (chain.balance(payer), chain.balance(chain.treasury.address)) == before
    with dev.stack.registry.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one() == settled
        )
