"""What one `reconcile` run did, kept apart so the control plane and its callers can name
the report without loading the chain-scanning code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReconcileReport:
    network: str
    token: str
    treasury: str
    from_block: int
    to_block: int
    settlements: int = 0
    deposits: int = 0
    unattributed: int = 0
    outflows: int = 0
    payouts_completed: int = 0
    deferred: int = 0
    edge_settlements: int = 0  # of `settlements`, those attributed from edge events
    edge_direct: int = 0  # of `edge_settlements`, those paid to a creator's own wallet
    released: int = 0  # claims whose authorization never moved money, freed for a retry
    channel_claims: int = 0  # escrow Claimed logs booked
    channel_settles: int = 0  # escrow settle transfers into the treasury booked
    ledger_treasury: int = 0
    chain_treasury: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.ledger_treasury == self.chain_treasury and not self.problems

    @property
    def posted(self) -> int:
        return (
            self.settlements
            + self.deposits
            + self.unattributed
            + self.outflows
            + self.payouts_completed
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "token": self.token,
            "treasury": self.treasury,
            "fromBlock": self.from_block,
            "toBlock": self.to_block,
            "settlements": self.settlements,
            "deposits": self.deposits,
            "unattributed": self.unattributed,
            "outflows": self.outflows,
            "payoutsCompleted": self.payouts_completed,
            "deferred": self.deferred,
            "edgeSettlements": self.edge_settlements,
            "edgeDirect": self.edge_direct,
            "released": self.released,
            "channelClaims": self.channel_claims,
            "channelSettles": self.channel_settles,
            "ledgerTreasuryAtomic": str(self.ledger_treasury),
            "chainTreasuryAtomic": str(self.chain_treasury),
            "balanced": self.balanced,
            "problems": self.problems,
            "warnings": self.warnings,
        }
