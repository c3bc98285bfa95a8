"""A key pair as the rest of 402claw passes it around: `(address, private_key)`."""

from __future__ import annotations

from typing import NamedTuple

from eth_account import Account
from eth_account.signers.local import LocalAccount


class Wallet(NamedTuple):
    """Checksummed address and 0x-hex private key; unpacks as `address, key = wallet`."""

    address: str
    private_key: str

    @classmethod
    def from_key(cls, private_key: str) -> Wallet:
        account = Account.from_key(private_key)
        return cls(account.address, "0x" + bytes(account.key).hex())

    @classmethod
    def create(cls) -> Wallet:
        """A fresh random wallet (holds nothing until funded)."""
        return cls.from_key("0x" + bytes(Account.create().key).hex())

    @property
    def account(self) -> LocalAccount:
        return Account.from_key(self.private_key)
