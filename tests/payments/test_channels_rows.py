"""Pricing by rows through a channel, end to end: anvil, the real facilitator, the gateway,
the official Python client (the SDK's batch-settlement client scheme) and the ledger.

A row-priced tenant's 402 asks for a full page; each voucher authorizes that maximum and the
gateway charges the rows returned (the SDK scheme's settlement override), so the next voucher
continues from the charged total. `exact` on the same route pays the full page. The claim,
the creator's balance and `reconcile` agree to the unit. On a stack of its own: reconcile
reads every treasury transfer since block 0.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import sqlalchemy as sa
from channelpay import SCHEME, ChannelPayer, config_of, required_of
from paidstack import open_stack
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id

from claw402.chain.token import usdc
from claw402.dispatch.pricing import rows_charge
from claw402.ledger.amounts import fee_of
from claw402.ledger.balances import balance, check_books
from claw402.ledger.chain import TokenChain
from claw402.ledger.reconcile import reconcile
from claw402.ledger.schema import channel_charges
from claw402.payments.channel_payer import ChannelTerms
from claw402.payments.channels.manager import ChannelManager
from claw402.payments.channels.terms import ChannelSchemes
from claw402.payments.client import pay_and_fetch_async, pay_many_async
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES
from jsclient import pay_with_js_client

PER_ROW = 50  # $0.05 per 1,000 rows
PAGE = 100 * PER_ROW  # the free plan's page cap is 100 rows: a full page is $0.005
BPS = 500

# (query, rows returned): pages of different sizes, an empty one, a record, another format.
CALLS = [
    ("v1/records?_limit=3", 3),
    ("v1/records?_limit=10", 10),
    ("v1/records?country=Atlantis", 0),
    ("v1/records?_limit=100", 50),  # the dataset holds 50 rows
    ("v1/records/7", 1),
    ("v1/records?_limit=4&_format=ndjson", 4),
]


def _rows_of(answer: httpx.Response) -> int:
    if answer.headers["content-type"].startswith("application/x-ndjson"):
        return len(answer.content.splitlines())
    body = answer.json()
    return 1 if "item" in body else len(body["items"])


def test_a_channel_pays_for_the_rows_returned_and_exact_for_a_full_page(tmp_path: Path) -> None:
    with open_stack(tmp_path) as stack:
        tenant = deploy(
            stack.registry,
            stack.settings,
            DeployRequest(source=CITIES, slug="rows", price_per_1k_rows="0.05", key="id"),
        )
        root = f"{stack.url}/t/rows/"
        treasury = stack.chain.treasury.address

        # The 402 asks for a full page in both schemes and says what exact pays.
        challenge = httpx.get(root + "v1/records", timeout=10)
        assert challenge.status_code == 402
        required = required_of(challenge)
        assert [(a.scheme, a.amount) for a in required.accepts] == [
            (SCHEME, str(PAGE)),
            ("exact", str(PAGE)),
        ]
        assert "an exact payment cannot be partial" in required.resource.description
        assert "$0.05 per 1,000 rows" in challenge.json()["detail"]

        payer = ChannelPayer(stack.payer(usdc(1)), stack.chain.network, stack.chain.token)
        charged_total = 0
        charges = []
        channel_id = ""
        for n, (query, rows) in enumerate(CALLS):
            answer, payload = payer.call(root + query)
            assert answer.status_code == 200, answer.text
            assert _rows_of(answer) == rows
            assert payload.payload["type"] == ("deposit" if n == 0 else "voucher")
            # Each voucher authorizes a full page on top of what was charged so far ...
            assert int(payload.payload["voucher"]["maxClaimableAmount"]) == charged_total + PAGE
            # ... and is charged for the rows returned (at least one unit).
            charge = rows_charge(PER_ROW * 1000, rows)
            assert charge == max(1, rows * PER_ROW)
            charged_total += charge
            charges.append(charge)
            receipt = decode_payment_response_header(answer.headers["payment-response"])
            assert receipt.extra["chargedAmount"] == str(charge)
            assert receipt.extra["channelState"]["chargedCumulativeAmount"] == str(charged_total)
            channel_id = compute_channel_id(config_of(payload), stack.chain.network)
        assert charges == [150, 500, 1, 2500, 50, 200]

        # The books hold each voucher's charge once, keyed on its cumulative total.
        c = channel_charges.c
        with stack.registry.engine.connect() as conn:
            booked = conn.execute(
                sa.select(c.cumulative, c.amount, c.fee)
                .where(c.channel_id == channel_id)
                .order_by(c.cumulative)
            ).all()
        running = [sum(charges[: i + 1]) for i in range(len(charges))]
        assert [tuple(r) for r in booked] == [
            (total, charge, fee_of(charge, BPS))
            for total, charge in zip(running, charges, strict=True)
        ]

        # `402claw call`'s client (payments.client) reads the charge from the receipt.
        calls = asyncio.run(
            pay_many_async(
                root + "v1/records?_limit=2",
                stack.payer(usdc(1)).private_key,
                PAGE,
                2,
                allowed_assets=[(stack.chain.network, stack.chain.token)],
                scheme="batch",
                channels=ChannelTerms(tmp_path / "payer-channels", max_deposit_atomic=usdc(1)),
            )
        )
        receipts = [call.channel for call in calls]
        assert [(r.charged, r.charged_total) for r in receipts if r] == [(100, 100), (100, 200)]
        # The official JavaScript client (@x402/evm batch-settlement) follows the same charges.
        js_payer = stack.payer(usdc(1))
        js = [
            pay_with_js_client(
                root + query, js_payer.private_key, stack.chain.network, stack.chain.token,
                10 * PAGE, channels=tmp_path / "js-channels",
            )
            for query in ("v1/records?_limit=5", "v1/records?_limit=1")
        ]  # fmt: skip
        assert [r["status"] for r in js] == [200, 200]
        assert [
            (r["paymentResponse"]["extra"]["chargedAmount"],
             r["paymentResponse"]["extra"]["channelState"]["chargedCumulativeAmount"])
            for r in js
        ] == [("250", "250"), ("50", "300")]  # fmt: skip
        other_channels = 200 + 300

        # exact on the same route cannot be partial: a 3-row page moves a full page.
        exact_payer = stack.payer(usdc(1))
        paid = asyncio.run(
            pay_and_fetch_async(
                root + "v1/records?_limit=3",
                exact_payer.private_key,
                max_price_atomic=PAGE,
                allowed_assets=[(stack.chain.network, stack.chain.token)],
                scheme="exact",
            )
        )
        assert paid.paid and paid.settlement is not None and paid.settlement.transaction
        assert len(paid.response.json()["items"]) == 3
        assert stack.balance(exact_payer.address) == usdc(1) - PAGE

        # Claim and settle: the escrow's totalClaimed is the charged total, to the unit.
        config = replace(stack.config, rpc_url=stack.chain.rpc_url)
        manager = ChannelManager(ChannelSchemes(config, stack.registry.engine))
        assert not manager.claim().errors
        assert not manager.settle().errors
        chain = TokenChain.connect(stack.chain.rpc_url, stack.chain.token)
        report = reconcile(stack.registry.engine, chain, treasury)
        assert report.balanced and report.problems == [], report.to_json()
        assert report.ledger_treasury == report.chain_treasury
        from claw402.ledger.channels import _escrow

        escrow = _escrow(stack.chain.web3()).functions.channels(bytes.fromhex(channel_id[2:]))
        assert int(escrow.call()[1]) == charged_total == sum(charges)

        earned = balance(stack.registry.engine, tenant.tenant_id)
        fees = sum(fee_of(x, BPS) for x in [*charges, 100, 100, 250, 50, PAGE])
        gross = charged_total + other_channels + PAGE
        assert (earned.earned, earned.fees, earned.unclaimed) == (gross, fees, 0)
        assert earned.available == gross - fees
        assert check_books(stack.registry.engine) == []
