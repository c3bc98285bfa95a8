"""A person pays through the paywall page: headless Chromium, a wallet, the dev chain.

The page is `@x402/paywall` as the gateway serves it; the wallet is `browserwallet`'s
(`window.ethereum`, anvil signing for an unlocked dev account). The stack is the one `402claw
dev` runs. The edge's page is paid the same way in `test_browser_edge_pay.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from browserwallet import creator_balance, paid_json, pay_through_the_page, with_wallet
from playwright.sync_api import Browser
from test_browser import browser, screenshot, shots  # noqa: F401 (fixtures)

from claw402.config import Settings
from claw402.devstack import DevStack, start_dev_stack
from claw402.ledger.schema import ledger_transactions
from claw402.payments.schema import payments
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES

PRICE = 1000  # $0.001 in the token's 6-decimal units


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


def settlements(dev: Dev) -> int:
    with dev.stack.registry.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one()


def test_a_person_connects_a_wallet_and_pays_in_chromium(browser: Browser, shots, dev):  # noqa: F811
    chain = dev.stack.chain
    payer = chain.payers[0].address  # an anvil dev account: anvil itself signs for it
    url = f"{dev.url}/t/cities/v1/records?country=Japan"
    before = chain.balance(payer), chain.balance(chain.treasury.address)
    earned = creator_balance(dev.settings, "cities")

    page = browser.new_page()
    log = with_wallet(page, chain, payer)
    pay_through_the_page(page, url, shots, payer, "paywall-pay")
    data = paid_json(page, log, shots, "paywall")
    page.close()
    assert "eth_signTypedData_v4" in log.asked, log.asked  # anvil signed for the payer
    # The page paid for the address the person opened, query included, and shows its answer.
    assert log.paid == [url], log.paid
    assert [row["city"] for row in data["items"]] == ["Tokyo", "Osaka", "Nagoya"], data

    # On chain: the payer paid exactly the price, to the treasury.
    assert chain.balance(payer) == before[0] - PRICE
    assert chain.balance(chain.treasury.address) == before[1] + PRICE
    # The creator's `402claw balance` rose by the price less the platform fee.
    assert creator_balance(dev.settings, "cities") - earned == PRICE * 95 // 100
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
    log = with_wallet(page, chain, payer, refuse=True)
    pay_through_the_page(page, f"{dev.url}/t/cities/v1/records", shots, payer, "paywall-decline")
    # The page says why, in its status line (after "Checking balance...", "Creating...").
    page.locator("#root .status", has_text="User rejected the request.").wait_for(timeout=30_000)
    assert page.url.startswith(dev.url)  # still the paywall page, no data shown
    screenshot(page, shots, "paywall-declined")
    page.close()
    assert log.paid == []  # no request carried a payment
    assert (chain.balance(payer), chain.balance(chain.treasury.address)) == before
    with dev.stack.registry.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one() == settled
        )
