"""What the ledger reads from (and sends to) the token's chain, over plain JSON-RPC.

Log queries are split into block ranges (`CHUNK`), as public RPC providers cap them. Events
are decoded by hand: the two the ledger needs have fixed layouts, and doing so avoids
building a contract object per query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
AUTHORIZATION_USED = "0x" + keccak(text="AuthorizationUsed(address,bytes32)").hex()
CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class TokenLog:
    """A Transfer (`sender`, `to`, `value`) or AuthorizationUsed (`sender`, `nonce`) log."""

    event: str
    tx_hash: str
    log_index: int
    block: int
    sender: str
    to: str | None = None
    value: int = 0
    nonce: str | None = None


def hexstr(value: Any) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return text if text.startswith("0x") else "0x" + text


def _topic_address(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


def _address(topic: Any) -> str:
    return to_checksum_address("0x" + hexstr(topic)[-40:])


def decode(log: Any) -> TokenLog | None:
    topics = [hexstr(t) for t in log["topics"]]
    common = {
        "tx_hash": hexstr(log["transactionHash"]).lower(),
        "log_index": int(log["logIndex"]),
        "block": int(log["blockNumber"]),
    }
    if topics and topics[0] == TRANSFER and len(topics) == 3:
        return TokenLog(
            "Transfer",
            sender=_address(topics[1]),
            to=_address(topics[2]),
            value=int(hexstr(log["data"]), 16),
            **common,
        )
    if topics and topics[0] == AUTHORIZATION_USED and len(topics) == 3:
        return TokenLog("AuthorizationUsed", sender=_address(topics[1]), nonce=topics[2], **common)
    return None


class TokenChain:
    """One token on one chain, as the reconciler and the payout runner see it."""

    def __init__(self, w3: Web3, token: str) -> None:
        self.w3 = w3
        self.token = to_checksum_address(token)
        self.chain_id = int(w3.eth.chain_id)

    @classmethod
    def connect(cls, rpc_url: str, token: str) -> TokenChain:
        from claw402.chain.tx import connect

        return cls(connect(rpc_url), token)

    @property
    def network(self) -> str:
        return f"eip155:{self.chain_id}"

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        try:
            block = self.w3.eth.get_block(number)
        except Exception:  # web3 raises BlockNotFound beyond the head
            return None
        return hexstr(block["hash"]).lower()

    def block_time(self, number: int) -> int:
        """The block's timestamp (seconds since the epoch)."""
        return int(self.w3.eth.get_block(number)["timestamp"])

    def balance(self, address: str, block: int | str = "latest") -> int:
        selector = keccak(text="balanceOf(address)")[:4].hex()
        data = "0x" + selector + "0" * 24 + address.lower().removeprefix("0x")
        raw = self.w3.eth.call({"to": self.token, "data": data}, block)  # type: ignore[typeddict-item]
        return int(hexstr(raw), 16)

    def logs(self, topics: list[Any], from_block: int, to_block: int) -> list[TokenLog]:
        found: list[TokenLog] = []
        start = from_block
        while start <= to_block:
            end = min(to_block, start + CHUNK - 1)
            raw = self.w3.eth.get_logs(
                {"address": self.token, "fromBlock": start, "toBlock": end, "topics": topics}
            )
            found += [d for d in map(decode, raw) if d is not None]
            start = end + 1
        return sorted(found, key=lambda log: (log.block, log.log_index))

    def transfers(
        self, from_block: int, to_block: int, *, sender: str | None = None, to: str | None = None
    ) -> list[TokenLog]:
        topics = [
            TRANSFER,
            _topic_address(sender) if sender else None,
            _topic_address(to) if to else None,
        ]
        return self.logs(topics, from_block, to_block)

    def authorization_used(
        self, authorizer: str, nonce: str, from_block: int, to_block: int
    ) -> list[TokenLog]:
        topics = [AUTHORIZATION_USED, _topic_address(authorizer), nonce.lower()]
        return self.logs(topics, from_block, to_block)

    def authorization_state(self, authorizer: str, nonce: str) -> bool:
        """True once the authorization's nonce was used (or canceled) on chain."""
        selector = keccak(text="authorizationState(address,bytes32)")[:4].hex()
        data = (
            "0x" + selector + "0" * 24 + authorizer.lower().removeprefix("0x")
            + nonce.lower().removeprefix("0x").rjust(64, "0")
        )  # fmt: skip
        raw = self.w3.eth.call({"to": self.token, "data": data})  # type: ignore[typeddict-item]
        return int(hexstr(raw), 16) != 0

    def authorization_used_since(
        self, authorizer: str, nonce: str, since: float
    ) -> TokenLog | None:
        """The `AuthorizationUsed` log of (authorizer, nonce), searched back from the head to
        the first block older than `since` (seconds since the epoch): bounded by how long ago
        the payment was presented, not by the chain's length."""
        end = self.head()
        while end >= 0:
            start = max(0, end - CHUNK + 1)
            found = self.authorization_used(authorizer, nonce, start, end)
            if found:
                return found[0]
            if start == 0 or self.block_time(start) < since:
                return None
            end = start - 1
        return None

    def transfer_for(self, auth: TokenLog) -> TokenLog | None:
        """The Transfer an `AuthorizationUsed` log authorised: the payer's next one in its
        transaction."""
        for log in self.receipt_logs(auth.tx_hash):
            if (
                log.event == "Transfer"
                and log.log_index > auth.log_index
                and log.sender.lower() == auth.sender.lower()
            ):
                return log
        return None

    def receipt_logs(self, tx_hash: str) -> list[TokenLog]:
        """The token's decoded logs in one mined transaction, in order."""
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        own = [log for log in receipt["logs"] if log["address"].lower() == self.token.lower()]
        return [d for d in map(decode, own) if d is not None]
