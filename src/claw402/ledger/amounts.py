"""USDC amounts as integers of atomic units (6 decimals), and the platform fee. Never floats."""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from claw402.money import DECIMALS, UNIT, atomic_to_usd

DEFAULT_FEE_BPS = 500  # 5%
FEE_ENV = "CLAW402_FEE_BPS"

__all__ = ["DEFAULT_FEE_BPS", "atomic_to_usd", "fee_bps", "fee_of", "parse_usd"]


def parse_usd(value: str | int | Decimal) -> int:
    """`"12.5"` -> `12_500_000`. A positive amount with at most 6 decimals (no upper cap)."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"amount {value!r} is not a number of dollars like 12.50") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be a positive number of dollars, got {value!r}")
    atomic = amount * UNIT
    if atomic != atomic.to_integral_value():
        raise ValueError(f"amount {value!r} has more than {DECIMALS} decimals (USDC's precision)")
    return int(atomic)


def fee_bps(environ: Mapping[str, str] | None = None) -> int:
    """The platform fee in basis points from `CLAW402_FEE_BPS` (default 500 = 5%)."""
    raw = (os.environ if environ is None else environ).get(FEE_ENV, "").strip()
    if not raw:
        return DEFAULT_FEE_BPS
    if not raw.isdigit() or int(raw) > 10_000:
        raise ValueError(
            f"{FEE_ENV} must be an integer from 0 to 10000 (basis points), got {raw!r}"
        )
    return int(raw)


def fee_of(gross: int, bps: int) -> int:
    """The fee on `gross`, rounded down to the unit (any rounding favours the creator)."""
    return gross * bps // 10_000
