"""USD prices as decimal strings <-> USDC atomic units (6 decimals). Never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DECIMALS = 6
UNIT = 10**DECIMALS
MAX_PRICE_ATOMIC = 1_000 * UNIT  # a call priced above $1,000 is a typo, not a business


def usd_to_atomic(
    value: str | int | Decimal, *, field: str = "price", maximum: int = MAX_PRICE_ATOMIC
) -> int:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{field} {value!r} is not a number of dollars like 0.001") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{field} must be a non-negative number of dollars, got {value!r}")
    atomic = amount * UNIT
    if atomic != atomic.to_integral_value():
        raise ValueError(f"{field} {value!r} has more than {DECIMALS} decimals (USDC's precision)")
    if atomic > maximum:
        raise ValueError(f"{field} {value!r} is above the ${maximum // UNIT} maximum")
    return int(atomic)


def atomic_to_usd(atomic: int) -> str:
    """`1000` -> `"0.001"`, `0` -> `"0"`: the shortest exact decimal string."""
    text = f"{Decimal(atomic) / UNIT:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
