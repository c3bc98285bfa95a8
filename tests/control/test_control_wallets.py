"""Payout wallets: only a signed, fresh, single-use challenge sets or changes the address."""

from __future__ import annotations

import pytest

from claw402.chain.wallet import Wallet
from claw402.control import audit, wallets
from claw402.control.errors import ControlError


def test_prove_change_and_refuse(engine):
    first, second, mallory = Wallet.create(), Wallet.create(), Wallet.create()
    challenge = wallets.challenge(engine, "tnt_1", "acme", first.address.lower())
    assert challenge.address == first.address and "tenant: acme (tnt_1)" in challenge.message
    assert wallets.challenge(engine, "tnt_1", "acme", first.address).id == challenge.id  # reused

    with pytest.raises(ControlError, match=f"made by {mallory.address}") as wrong:
        wallets.prove(
            engine,
            "tnt_1",
            first.address,
            wallets.sign(challenge.message, mallory.private_key),
            "alice",
        )
    assert wrong.value.code == "bad_signature"
    assert wallets.payout_wallet(engine, "tnt_1") is None

    signature = wallets.sign(challenge.message, first.private_key)
    proved = wallets.prove(engine, "tnt_1", first.address, signature, "alice")
    assert (proved.address, proved.previous) == (first.address, None)
    assert wallets.payout_wallet(engine, "tnt_1") == first.address
    with pytest.raises(ControlError, match="no open challenge"):  # single use: no replay
        wallets.prove(engine, "tnt_1", first.address, signature, "alice")

    other = wallets.challenge(engine, "tnt_1", "acme", second.address)
    changed = wallets.prove(
        engine, "tnt_1", second.address, wallets.sign(other.message, second.private_key), "alice"
    )
    assert changed.previous == first.address
    assert wallets.payout_wallet(engine, "tnt_1") == second.address
    entries = audit.entries(engine)
    assert [e.action for e in entries] == ["wallet.verified", "wallet.changed"]
    assert entries[1].details["previous"] == first.address
    assert entries[1].details["address"] == second.address

    wallets.challenge(engine, "tnt_1", "acme", first.address)
    with pytest.raises(ControlError, match="unreadable signature"):
        wallets.prove(engine, "tnt_1", first.address, "0x1234", "alice")
    with pytest.raises(ControlError, match="invalid address"):
        wallets.challenge(engine, "tnt_1", "acme", "0x12")
