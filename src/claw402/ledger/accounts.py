"""Account codes and what kind of account each is.

Assets (debit-normal): `treasury:<address>` (USDC the platform holds on chain),
`tenant:<id>:fees_due` (fees a directly-paid creator owes), `channels:<receiver>:unclaimed`
(vouchers accepted, not yet claimed from the escrow) and `channels:<receiver>:claimed`
(claimed in the escrow, not yet settled to the receiver). Liabilities (credit-normal):
`tenant:<id>:available` (withdrawable earnings), `tenant:<id>:reserved` (pending
withdrawals) and `tenant:<id>:receivable` (channel earnings not yet claimed: not
withdrawable). Revenue: `fees:<tenant id>`. Equity: `platform:equity` (treasury funding, mints,
outflows that are not payouts) and `platform:unattributed` (payments to the treasury that no
tenant's claim explains).
"""

from __future__ import annotations

ASSET, LIABILITY, REVENUE, EQUITY = "asset", "liability", "revenue", "equity"
PLATFORM_EQUITY = "platform:equity"
UNATTRIBUTED = "platform:unattributed"


def treasury(address: str) -> str:
    return f"treasury:{address.lower()}"


def available(tenant_id: str) -> str:
    return f"tenant:{tenant_id}:available"


def reserved(tenant_id: str) -> str:
    return f"tenant:{tenant_id}:reserved"


def fees_due(tenant_id: str) -> str:
    return f"tenant:{tenant_id}:fees_due"


def receivable(tenant_id: str) -> str:
    return f"tenant:{tenant_id}:receivable"


def channel_unclaimed(receiver: str) -> str:
    return f"channels:{receiver.lower()}:unclaimed"


def channel_claimed(receiver: str) -> str:
    return f"channels:{receiver.lower()}:claimed"


def fees(tenant_id: str) -> str:
    return f"fees:{tenant_id}"


def kind_of(code: str) -> str:
    head, _, rest = code.partition(":")
    if head == "treasury" or (head == "tenant" and rest.endswith(":fees_due")):
        return ASSET
    if head == "channels" and rest.endswith((":unclaimed", ":claimed")):
        return ASSET
    if head == "tenant" and rest.endswith((":available", ":reserved", ":receivable")):
        return LIABILITY
    if head == "fees" and rest:
        return REVENUE
    if code in (PLATFORM_EQUITY, UNATTRIBUTED):
        return EQUITY
    raise ValueError(f"unknown ledger account {code!r}")


def tenant_of(code: str) -> str | None:
    head, _, rest = code.partition(":")
    if head == "tenant":
        return rest.rsplit(":", 1)[0]
    if head == "fees":
        return rest
    return None


def normal_sign(code: str) -> int:
    """+1 where a debit increases the balance (assets), -1 where a credit does."""
    return 1 if kind_of(code) == ASSET else -1
