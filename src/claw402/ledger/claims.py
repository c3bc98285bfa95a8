"""The payments layer's tables, as the ledger reads and completes them.

They are `claw402.payments.schema`'s own tables, not a mirror: that module needs only
SQLAlchemy (the `claw402.payments` package keeps the x402 SDK out of its import, and
tests/cli/test_cli_imports.py holds it to that), so `402claw balance` loads no SDK either.
"""

from __future__ import annotations

from claw402.payments.schema import (
    CLAIMED,
    PENDING,
    RELEASED,
    SETTLED,
    payment_claims,
    payments,
)

__all__ = ["CLAIMED", "PENDING", "RELEASED", "SETTLED", "payment_claims", "payments"]
