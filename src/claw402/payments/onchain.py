"""What became of a presented authorization, read from the token's chain.

The paywall asks when the facilitator could not say: a settle whose reply was lost, or one
that failed although the authorization may have been used anyway. The token knows: its
`authorizationState(payer, nonce)` says whether the nonce was spent, its `AuthorizationUsed`
log (searched back only to when the payment was presented) names the transaction, and the
payer's `Transfer` beside it is the money that moved. Blocking JSON-RPC: call it from a
worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # web3 loads on first use only
    from claw402.ledger.chain import TokenChain, TokenLog

# Clocks differ: look back this much further than the claim's creation for its transaction.
LOOKBACK_MARGIN_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Outcome:
    """`used`: the nonce is spent on chain; `transfer`: the payment it made, when found (a
    spent nonce without one was canceled); `chain_time`: the head block's timestamp, which
    no later block can precede (so `chain_time >= validBefore` means it can never be used)."""

    used: bool
    transfer: TokenLog | None
    chain_time: int


class ChainLookup:
    def __init__(self, rpc_url: str, token: str) -> None:
        self.rpc_url = rpc_url
        self.token = token
        self._chain: TokenChain | None = None
        self._lock = Lock()

    def _connect(self) -> TokenChain:
        with self._lock:
            if self._chain is None:
                from claw402.ledger.chain import TokenChain

                self._chain = TokenChain.connect(self.rpc_url, self.token)
            return self._chain

    def outcome(self, payer: str, nonce: str, since: float, tx_hash: str | None) -> Outcome:
        """The authorization (payer, nonce) as the chain has it now; `since` is when it was
        first presented (seconds since the epoch), `tx_hash` the transaction a facilitator
        named for it, if any."""
        chain = self._connect()
        head = chain.head()
        chain_time = chain.block_time(head)
        if not chain.authorization_state(payer, nonce):
            return Outcome(False, None, chain_time)
        auth = self._in_transaction(chain, payer, nonce, tx_hash) if tx_hash else None
        if auth is None:
            auth = chain.authorization_used_since(payer, nonce, since - LOOKBACK_MARGIN_SECONDS)
        transfer = chain.transfer_for(auth) if auth is not None else None
        return Outcome(True, transfer, chain_time)

    @staticmethod
    def _in_transaction(chain: TokenChain, payer: str, nonce: str, tx_hash: str) -> TokenLog | None:
        try:
            logs = chain.receipt_logs(tx_hash)
        except Exception:  # not mined (replaced, dropped): search the logs instead
            return None
        return next(
            (
                log
                for log in logs
                if log.event == "AuthorizationUsed"
                and log.sender.lower() == payer.lower()
                and (log.nonce or "").lower() == nonce.lower()
            ),
            None,
        )
