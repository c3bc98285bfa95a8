"""Pricing by rows: a price per 1,000 rows, the full-page maximum a 402 advertises, and what
a page of `rows` costs. Pure integer math in atomic units, shared by both runtimes' exports.

A caller cannot know a page's size before it runs, so a row-priced route advertises the
price of a full page (the plan's page cap) and charges within it: a channel
(`batch-settlement`) voucher authorizes that maximum and the server charges the rows
returned; an `exact` transfer cannot be partial, so it pays the maximum.

Every served page costs at least one atomic unit, an empty one included: a zero charge would
leave the channel's cumulative total where it was, so the same signed voucher would be valid
again (anyone who saw it could spend it) and the ledger would have no new total to key the
booking on. Fractions round up to the next atomic unit, so the creator never earns less than
the stated rate.
"""

from __future__ import annotations

from claw402.dispatch.plans import MAX_PAGE_SIZE
from claw402.money import MAX_PRICE_ATOMIC, atomic_to_usd, usd_to_atomic

ROWS_PER_PRICE = 1_000
MIN_CHARGE = 1  # atomic units: what an empty page costs
# The largest rate whose full page stays within a call's maximum price on every plan.
MAX_PER_1K_ATOMIC = MAX_PRICE_ATOMIC * ROWS_PER_PRICE // max(MAX_PAGE_SIZE.values())


def rows_charge(per_1k_atomic: int, rows: int) -> int:
    """What `rows` rows cost at `per_1k_atomic` per 1,000: rounded up, at least `MIN_CHARGE`."""
    if per_1k_atomic <= 0 or rows < 0:
        raise ValueError("a row price must be positive and a row count not negative")
    return max(MIN_CHARGE, -(-rows * per_1k_atomic // ROWS_PER_PRICE))


def page_price(per_1k_atomic: int, page_cap: int) -> int:
    """The maximum one call can cost: a full page of `page_cap` rows."""
    return rows_charge(per_1k_atomic, page_cap)


def parse_rows_price(value: str) -> int:
    """`--price-per-1k-rows` in USD -> atomic units; positive, at most 6 decimals, capped so
    that a full page on any plan stays within a call's maximum price. Raises ValueError."""
    atomic = usd_to_atomic(value, field="price per 1k rows")
    if atomic <= 0:
        raise ValueError(
            f"price per 1k rows must be positive (use --price 0 for a free API), got {value!r}"
        )
    if atomic > MAX_PER_1K_ATOMIC:
        raise ValueError(
            f"price per 1k rows {value!r} is above the ${atomic_to_usd(MAX_PER_1K_ATOMIC)} "
            f"maximum (a full page of {max(MAX_PAGE_SIZE.values()):,} rows would cost more "
            f"than ${atomic_to_usd(MAX_PRICE_ATOMIC)})"
        )
    return atomic


def rows_terms(per_1k_atomic: int, page_cap: int) -> str:
    """The sentence a row-priced 402 describes its price with."""
    return (
        f"${atomic_to_usd(per_1k_atomic)} per 1,000 rows returned, up to "
        f"${atomic_to_usd(page_price(per_1k_atomic, page_cap))} for a full page of "
        f"{page_cap:,} rows; a batch-settlement channel is charged for the rows returned "
        "(at least $0.000001), an exact payment cannot be partial and pays the full-page price"
    )
