"""Payer signers that sign channel vouchers fast: a voucher is signed on every paid call.

The SDK signs every EIP-712 message through eth_account, which rebuilds the domain and the
key object each time. A voucher's domain never changes for a chain, and its message is two
words, so its digest is hashed here from a cached domain separator (computed once by
eth_account; `payments.channels.digest`, shared with the gateway's check) and signed with
coincurve (RFC 6979 deterministic, low-s, as eth_account's): the same signature, byte for
byte (tests/payments/test_voucher_signer.py). Every other message (deposits' EIP-3009
authorizations, refunds) goes to eth_account unchanged.
"""

from __future__ import annotations

from typing import Any

import coincurve
from eth_account.signers.local import LocalAccount
from x402.mechanisms.evm.batch_settlement.constants import VOUCHER_TYPES
from x402.mechanisms.evm.batch_settlement.utils import coerce_bytes32
from x402.mechanisms.evm.signers import EthAccountSigner, EthAccountSignerWithRPC
from x402.mechanisms.evm.types import TypedDataDomain

from claw402.payments.channels.digest import voucher_digest, voucher_separator


def _domain_dict(domain: Any) -> dict[str, Any]:
    if isinstance(domain, TypedDataDomain):
        return {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        }
    return dict(domain)


class _FastVouchers:
    _account: LocalAccount

    def _init_fast(self, account: LocalAccount) -> None:
        self._key = coincurve.PrivateKey(bytes(account.key))
        self._separators: dict[tuple[Any, ...], bytes] = {}

    def sign_typed_data(
        self, domain: Any, types: Any, primary_type: str, message: dict[str, Any]
    ) -> bytes:
        if primary_type != "Voucher" or types != VOUCHER_TYPES:
            return super().sign_typed_data(domain, types, primary_type, message)  # type: ignore[misc]
        amount = int(message["maxClaimableAmount"])
        if not 0 <= amount < 2**128:
            raise ValueError(f"maxClaimableAmount {amount} does not fit uint128")
        fields = _domain_dict(domain)
        key = tuple(sorted(fields.items()))
        separator = self._separators.get(key)
        if separator is None:
            separator = self._separators[key] = voucher_separator(fields)
        digest = voucher_digest(separator, coerce_bytes32(message["channelId"]), amount)
        signature = self._key.sign_recoverable(digest, hasher=None)
        return signature[:64] + bytes([signature[64] + 27])


class VoucherSigner(_FastVouchers, EthAccountSigner):
    def __init__(self, account: LocalAccount) -> None:
        EthAccountSigner.__init__(self, account)
        self._init_fast(account)


class VoucherSignerWithRPC(_FastVouchers, EthAccountSignerWithRPC):
    """Also reads the escrow over RPC (channel recovery)."""

    def __init__(self, account: LocalAccount, rpc_url: str) -> None:
        EthAccountSignerWithRPC.__init__(self, account, rpc_url)
        self._init_fast(account)
