"""Every lifecycle event kind: one place to add one (and the Worker's `kinds.js` follows).

Dispatch kinds are one per request: `dispatch_start`, then `dispatch_success` or
`dispatch_failure`. Payment kinds are the paywall's steps between them.
"""

from __future__ import annotations

DISPATCH_START = "dispatch_start"
DISPATCH_SUCCESS = "dispatch_success"
DISPATCH_FAILURE = "dispatch_failure"

PAYMENT_CHALLENGE = "payment_challenge"
PAYMENT_VERIFIED = "payment_verified"
PAYMENT_SETTLED = "payment_settled"
PAYMENT_PENDING = "payment_pending"
PAYMENT_FAILED = "payment_failed"
PAYMENT_REPLAYED = "payment_replayed"
PAYMENT_VOUCHER = "payment_voucher"  # a channel voucher accepted: paid, no chain transaction

# Every kind by its constant's name, in a stable order (the generated JS module's).
BY_NAME: dict[str, str] = {
    name: value for name, value in list(globals().items())
    if name.startswith(("DISPATCH_", "PAYMENT_")) and isinstance(value, str)
}  # fmt: skip
KINDS = frozenset(BY_NAME.values())
