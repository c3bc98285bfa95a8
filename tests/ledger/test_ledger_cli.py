"""The money commands end to end on anvil: verify a wallet, withdraw, pay out, reconcile."""

from __future__ import annotations

import json

from ledgerkit import assert_invariants, earn_through_gateway, new_treasury
from typer.testing import CliRunner

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.cli.main import app
from claw402.control import wallets

runner = CliRunner()


def test_withdraw_and_payout_from_the_command_line(
    tmp_path, monkeypatch, database_url, engine, chain
):
    treasury = new_treasury(chain, usdc(5))
    for name, value in {
        "CLAW402_DATABASE_URL": database_url,
        "CLAW402_RPC_URL": chain.rpc_url,
        "CLAW402_ASSET": chain.token,
        "CLAW402_TREASURY": treasury.address,
        "CLAW402_TREASURY_KEY": treasury.private_key,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLAW402_API_KEY", raising=False)

    def run(*args: str, ok: bool = True) -> dict:
        result = runner.invoke(app, [*args, "--home", str(tmp_path), "--json"])
        assert (result.exit_code == 0) is ok, result.output
        return json.loads(result.stdout)

    earn_through_gateway(engine, chain, treasury.address, "acme", usdc(2))
    assert run("balance", "--tenant", "acme")["balance"]["available"] == "1.9"

    creator = Wallet.create()
    challenge = run("wallet", "verify", "--tenant", "acme", "--address", creator.address)
    signature = wallets.sign(challenge["challenge"], creator.private_key)
    run(
        "wallet",
        "verify",
        "--tenant",
        "acme",
        "--address",
        creator.address,
        "--signature",
        signature,
    )
    too_much = run("withdraw", "--tenant", "acme", "--amount", "1.900001", ok=False)
    assert too_much["error"] == "insufficient_funds"
    withdrawal = run("withdraw", "--tenant", "acme", "--amount", "1.5")["withdrawal"]
    assert withdrawal["address"] == creator.address and withdrawal["status"] == "pending"

    planned = run("payouts", "run", "--dry-run")["results"]
    assert [r["status"] for r in planned] == ["would_pay"] and chain.balance(creator.address) == 0
    done = run("payouts", "run")["results"]
    assert [r["status"] for r in done] == ["completed"]
    assert chain.balance(creator.address) == usdc("1.5")
    assert run("payouts", "list")["withdrawals"][0]["txHash"] == done[0]["txHash"]

    report = run("reconcile")
    assert report["balanced"] and report["settlements"] == 0 and report["deposits"] == 1
    b = run("balance", "--tenant", "acme")["balance"]
    assert (b["earned"], b["fees"], b["withdrawn"], b["available"]) == ("2", "0.1", "1.5", "0.4")
    assert_invariants(engine, chain, treasury.address)
    assert run("audit", "verify")["ok"]
