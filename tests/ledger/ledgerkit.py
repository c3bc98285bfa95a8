"""Helpers the ledger tests share (a uniquely named module, importable from any test folder).

Everything is real: tenants are registry rows, claims are the payments layer's rows, money
moves on anvil through ClawUSD's `transferWithAuthorization`, submitted by the facilitator's
account exactly as the facilitator does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine

from claw402.chain.devchain import DevChain
from claw402.chain.eip3009 import Authorization, sign_authorization
from claw402.chain.wallet import Wallet
from claw402.ledger import account_balance, accounts, check_books
from claw402.ledger.chain import TokenChain
from claw402.ledger.reconcile import reconcile
from claw402.ledger.report import ReconcileReport
from claw402.registry.store import NewVersion, Registry, TenantSpec

ETH = 10**18


def make_tenant(engine: Engine, slug: str, *, pay_to: str | None = None, owner: str | None = None):
    version = NewVersion(
        source_path="/src/data.csv",
        format="csv",
        rows=1,
        bytes=1,
        columns=[{"name": "id", "type": "integer"}],
        key="id",
        data_path=f"/data/{slug}.duckdb",
    )
    spec = TenantSpec(
        slug=slug,
        worker_name=f"tenant-{slug}-worker",
        plan="free",
        price_atomic=10_000,
        pay_to=pay_to,
        owner=owner,
    )
    return Registry(engine).deploy(spec, version)


def new_treasury(chain: DevChain, usdc_atomic: int = 0) -> Wallet:
    """A fresh treasury (so no other test's transfers touch it), with ETH for payout gas."""
    wallet = Wallet.create()
    chain.fund(wallet.address, usdc_atomic, eth_wei=ETH) if usdc_atomic else _eth(chain, wallet)
    return wallet


def _eth(chain: DevChain, wallet: Wallet) -> None:
    from web3 import Web3

    from claw402.chain.tx import broadcast, wait_for_receipt

    w3 = chain.web3()
    tx = {"to": Web3.to_checksum_address(wallet.address), "value": ETH, "gas": 21_000}
    wait_for_receipt(w3, broadcast(w3, chain.deployer.account, tx))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Paid:
    payer: str
    nonce: str
    amount: int
    to: str
    tx_hash: str


def authorize(chain: DevChain, payer: Wallet, to: str, amount: int) -> tuple[Authorization, bytes]:
    auth = Authorization(payer.address, to, amount, 0, int(time.time()) + 3600, os.urandom(32))
    domain = chain.token_contract().domain()
    return auth, sign_authorization(payer.private_key, auth, domain)


def transfer_with_authorization_data(chain: DevChain, auth: Authorization, signature: bytes) -> str:
    """ABI-encoded calldata of ClawUSD's `transferWithAuthorization` (v, r, s overload)."""
    from claw402.chain.eip3009 import split_signature

    v, r, s = split_signature(signature)
    contract = chain.token_contract().contract
    return contract.encode_abi(
        "transferWithAuthorization",
        [
            auth.from_address,
            auth.to,
            auth.value,
            auth.valid_after,
            auth.valid_before,
            auth.nonce,
            v,
            r,
            s,
        ],
    )


def settle_on_chain(chain: DevChain, payer: Wallet, to: str, amount: int) -> Paid:
    """What the facilitator does at /settle: submit the signed authorization."""
    auth, signature = authorize(chain, payer, to, amount)
    receipt = chain.token_contract().transfer_with_authorization(
        chain.facilitator.account, auth, signature
    )
    return Paid(
        payer.address.lower(),
        "0x" + auth.nonce.hex(),
        amount,
        to,
        "0x" + bytes(receipt["transactionHash"]).hex(),
    )


def insert_claim(
    engine: Engine,
    tenant_id: str,
    network: str,
    asset: str,
    payer: str,
    nonce: str,
    amount: int,
    pay_to: str,
    *,
    status: str = "claimed",
    age_seconds: float = 0,
    valid_before: int | None = None,
) -> int:
    """A claim row as `PaymentStore.claim` writes it before verify."""
    from datetime import UTC, datetime, timedelta

    moment = datetime.now(UTC) - timedelta(seconds=age_seconds)
    from claw402.ledger.claims import payment_claims as table

    with engine.begin() as conn:
        return conn.execute(
            sa.insert(table)
            .values(
                network=network,
                payer=payer.lower(),
                nonce=nonce.lower(),
                status=status,
                tenant_id=tenant_id,
                request_id="req-" + nonce[2:10],
                amount_atomic=amount,
                asset=asset,
                pay_to=pay_to,
                created_at=moment,
                updated_at=moment,
                valid_before=valid_before,
            )
            .returning(table.c.id)
        ).scalar_one()


def earn_through_gateway(engine: Engine, chain: DevChain, treasury: str, slug: str, amount: int):
    """A tenant paid `amount` the gateway way: claim, settle on chain, post in one transaction."""
    from claw402.ledger import post_settlement

    tenant = make_tenant(engine, slug)
    payer = Wallet.create()
    chain.fund(payer.address, amount)
    paid = settle_on_chain(chain, payer, treasury, amount)
    claim = insert_claim(
        engine,
        tenant.tenant_id,
        chain.network,
        chain.token,
        paid.payer,
        paid.nonce,
        amount,
        treasury,
    )
    with engine.begin() as conn:
        post_settlement(conn, claim, paid.tx_hash)
    return tenant


def sync(engine: Engine, chain: DevChain, treasury: str, **kw) -> ReconcileReport:
    kw.setdefault("grace_seconds", 0)
    return reconcile(engine, TokenChain(chain.web3(), chain.token), treasury, **kw)


def assert_invariants(engine: Engine, chain: DevChain, treasury: str) -> None:
    """Postings sum to zero, nothing below zero, ledger treasury == on-chain treasury."""
    assert check_books(engine) == []
    with engine.connect() as conn:
        assert account_balance(conn, accounts.treasury(treasury)) == chain.balance(treasury)


CHILD = os.path.join(os.path.dirname(__file__), "crash_child.py")


def run_until(mode: str, args: dict, expect: str) -> str:
    """Run crash_child.py, wait for its line starting with `expect`, then SIGKILL it."""
    import json
    import signal
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, CHILD, mode, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        line = child.stdout.readline()
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        code = child.wait(10)
    assert line.startswith(expect), (line, child.stderr.read())
    assert code == -signal.SIGKILL
    return line.split()[1]
