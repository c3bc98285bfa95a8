"""The payments layer's tables, as the ledger reads and completes them.

Named here with lightweight `table()` clauses instead of importing `claw402.payments`: that
package loads the x402 SDK (~2.5 s), which `402claw balance` should not pay. Columns and
statuses mirror `claw402.payments.schema` (migrations 0002 and 0008).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, DateTime, Integer, column, table

_TS = DateTime(timezone=True)

CLAIMED, PENDING, SETTLED, RELEASED = "claimed", "pending", "settled", "released"

payment_claims = table(
    "payment_claims",
    column("id", Integer),
    column("network"),
    column("payer"),
    column("nonce"),
    column("status"),
    column("tenant_id"),
    column("request_id"),
    column("amount_atomic", BigInteger),
    column("asset"),
    column("pay_to"),
    column("tx_hash"),
    column("created_at", _TS),
    column("updated_at", _TS),
    column("attempts", Integer),
    column("verified_sha256"),
    column("valid_before", BigInteger),
    column("served_at", _TS),
)

payments = table(
    "payments",
    column("id", Integer),
    column("network"),
    column("tx_hash"),
    column("payer"),
    column("amount_atomic", BigInteger),
    column("asset"),
    column("pay_to"),
    column("tenant_id"),
    column("request_id"),
    column("resource"),
    column("settled_at", _TS),
)
