"""Pricing by rows: the charge for a page, the full-page maximum, and the rate's validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from claw402.dispatch.plans import MAX_PAGE_SIZE, max_page_size
from claw402.dispatch.pricing import (
    MAX_PER_1K_ATOMIC,
    MIN_CHARGE,
    page_price,
    parse_rows_price,
    rows_charge,
)
from claw402.money import MAX_PRICE_ATOMIC
from claw402.registry.models import Tenant


@pytest.mark.parametrize(
    ("per_1k", "rows", "charge"),
    [
        (10_000, 1_000, 10_000),  # $0.01 per 1k rows: 1,000 rows cost $0.01
        (10_000, 7, 70),  # 10 units a row
        (10_000, 0, MIN_CHARGE),  # an empty page costs the minimum, never 0
        (1, 1, 1),  # 0.001 unit rounds up to one
        (1, 1_000, 1),
        (1, 1_001, 2),  # a fraction of a unit rounds up
        (150, 3, 1),  # 0.45 -> 1
        (150, 7, 2),  # 1.05 -> 2
        (333, 3, 1),  # 0.999 -> 1
        (50_000, 100, 5_000),
    ],
)
def test_rows_charge_rounds_up_to_the_atomic_unit(per_1k: int, rows: int, charge: int) -> None:
    assert rows_charge(per_1k, rows) == charge


def test_a_charge_never_exceeds_the_full_page_price() -> None:
    for per_1k in (1, 7, 150, 10_000, MAX_PER_1K_ATOMIC):
        for plan in MAX_PAGE_SIZE:
            cap = max_page_size(plan)
            top = page_price(per_1k, cap)
            assert all(rows_charge(per_1k, n) <= top for n in (0, 1, cap // 2, cap))
            assert rows_charge(per_1k, cap) == top


def test_every_plans_full_page_stays_within_a_calls_maximum() -> None:
    for plan in MAX_PAGE_SIZE:
        assert page_price(MAX_PER_1K_ATOMIC, max_page_size(plan)) <= MAX_PRICE_ATOMIC


@pytest.mark.parametrize("bad", [(0, 1), (-5, 1), (10, -1)])
def test_rows_charge_refuses_nonsense(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        rows_charge(*bad)


@pytest.mark.parametrize(
    ("value", "atomic"),
    [("0.01", 10_000), ("0.000001", 1), ("1", 1_000_000), (" 100 ", MAX_PER_1K_ATOMIC)],
)
def test_parse_rows_price(value: str, atomic: int) -> None:
    assert parse_rows_price(value) == atomic


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be positive"),
        ("-0.01", "non-negative"),
        ("0.0000001", "decimals"),
        ("abc", "not a number"),
        ("nan", "non-negative"),
        ("100.000001", "maximum"),
    ],
)
def test_parse_rows_price_says_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rows_price(value)


def _tenant(
    plan: str, price: int = 0, per_1k: int | None = None, description: str | None = None
) -> Tenant:
    now = datetime.now(UTC)
    return Tenant(
        tenant_id="tnt_x", slug="x", worker_name="w", owner=None, plan=plan, price_atomic=price,
        pay_to=None, cpu_ms=None, sub_requests=None, name=None, description=description,
        created_at=now, updated_at=now, price_per_1k_rows_atomic=per_1k,
    )  # fmt: skip


def test_a_row_priced_tenant_advertises_a_full_page_everywhere() -> None:
    tenant = _tenant("pro", per_1k=10_000)  # pro pages are 1,000 rows
    assert tenant.call_price_atomic == 10_000 and tenant.price_usd == "0.01"
    assert tenant.rows_price_usd == "0.01"
    route = tenant.route()
    assert route.price_atomic == 10_000 and route.price_per_1k_rows_atomic == 10_000
    entry = route.directory_entry(tenant.price_usd)
    assert (entry["priceAtomic"], entry["pricePer1kRows"], entry["pricePer1kRowsAtomic"]) == (
        "10000", "0.01", "10000")  # fmt: skip
    assert _tenant("free", per_1k=10_000).call_price_atomic == 1_000  # 100 rows
    assert "exact payment cannot be partial" in tenant.offer_description
    assert tenant.offer_description.startswith("x: one API call (")
    described = _tenant("free", per_1k=10_000, description="Cities")
    assert described.offer_description.startswith("Cities ($0.01 per 1,000 rows")


def test_a_tenant_priced_per_call_is_unchanged() -> None:
    tenant = _tenant("pro", price=1_000)
    assert tenant.call_price_atomic == 1_000 and tenant.rows_price_usd is None
    assert tenant.offer_description == "x: one API call"
    assert tenant.route().directory_entry("0.001")["pricePer1kRows"] is None
