"""The ledger: double-entry books in USDC atomic units, fees, withdrawals, payouts, reconcile.

DB-only parts import fast and are re-exported here; `chain`, `payouts` and `reconcile` load
web3 and are imported explicitly by the commands that touch a chain.

- `post_settlement(conn, claim_id, tx_hash)`: the paywall's call, in its settle transaction.
- `balance(engine, tenant_id) -> Balance`: a creator's earned, fees, pending, available.
- `withdrawals.request(...)`: reserve funds for a payout.
- `check_books(engine)`: unbalanced transactions or negative balances, if any.
"""

from claw402.ledger.balances import Balance, account_balance, balance, check_books
from claw402.ledger.settlements import post_settlement

__all__ = ["Balance", "account_balance", "balance", "check_books", "post_settlement"]
