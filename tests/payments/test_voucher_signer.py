"""The fast voucher signature is eth_account's, byte for byte; other messages go to it."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account
from x402.mechanisms.evm.batch_settlement.client import sign_voucher
from x402.mechanisms.evm.batch_settlement.constants import REFUND_TYPES
from x402.mechanisms.evm.batch_settlement.utils import get_batch_settlement_eip712_domain
from x402.mechanisms.evm.signers import EthAccountSigner

from claw402.payments.voucher_signer import VoucherSigner, VoucherSignerWithRPC


@pytest.mark.parametrize("network", ["eip155:31337", "eip155:8453"])
def test_vouchers_are_signed_exactly_as_eth_account_signs_them(network: str) -> None:
    account = Account.create()
    fast, reference = VoucherSigner(account), EthAccountSigner(account)
    for amount in (1, 1_000, 2**128 - 1, 7):
        channel = "0x" + secrets.token_hex(32)
        mine = sign_voucher(fast, channel, amount, network)
        theirs = sign_voucher(reference, channel, amount, network)
        assert mine.signature == theirs.signature


def test_other_messages_and_the_rpc_signer_go_through_eth_account() -> None:
    account = Account.create()
    domain = get_batch_settlement_eip712_domain(31337)
    message = {"channelId": bytes(32), "nonce": 3, "amount": 5}
    with_rpc = VoucherSignerWithRPC(account, "http://127.0.0.1:1")  # never called here
    expected = EthAccountSigner(account).sign_typed_data(domain, REFUND_TYPES, "Refund", message)
    assert with_rpc.sign_typed_data(domain, REFUND_TYPES, "Refund", message) == expected
    channel = "0x" + secrets.token_hex(32)
    assert (
        sign_voucher(with_rpc, channel, 9, "eip155:31337").signature
        == sign_voucher(EthAccountSigner(account), channel, 9, "eip155:31337").signature
    )


def test_an_amount_past_uint128_is_refused() -> None:
    with pytest.raises(ValueError, match="uint128"):
        sign_voucher(VoucherSigner(Account.create()), "0x" + "00" * 32, 2**128, "eip155:1")


def test_the_fast_keccak_is_eth_utils_keccak() -> None:
    from eth_utils import keccak

    from claw402.payments.channels.digest import keccak256

    for size in (0, 1, 32, 64, 135, 136, 137, 500):
        data = secrets.token_bytes(size)
        assert keccak256(data) == keccak(data)


def test_every_keccak_of_a_claw402_process_is_the_c_one() -> None:
    """eth_utils, eth_account, web3 and the SDK hash through eth-hash, told by claw402."""
    import os
    import subprocess
    import sys

    code = (
        "import claw402\n"
        "from eth_utils import to_checksum_address\n"
        "to_checksum_address('0x' + 'ab' * 20)\n"
        "from eth_hash.auto import keccak\n"
        "print(keccak.hasher.__module__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ETH_HASH_BACKEND"}
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "eth_hash.backends.pysha3"
