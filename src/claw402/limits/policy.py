"""What limits a tenant's callers: the plan's default rate or the creator's `--rate`, and the
tenant's quotas and daily spend cap. Parsed and checked here, for deploy and for every call."""

from __future__ import annotations

import re
from dataclasses import dataclass

from claw402.registry.models import Controls, Tenant

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}
_RATE_RE = re.compile(r"^\s*([1-9][0-9]{0,8})\s*/\s*(s|m|min|h)\s*$")


class InvalidLimit(ValueError):
    """A limit a creator asked for that cannot be enforced; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`limit` calls per caller in each fixed window of `window` seconds."""

    limit: int
    window: int

    def __str__(self) -> str:
        unit = {1: "s", 60: "m", 3600: "h"}[self.window]
        return f"{self.limit}/{unit}"


# Plan defaults per caller (above what one sequential paying client reaches through a
# channel, so a paying agent is never throttled by default); the quarantine plan's holds
# whatever `--rate` says.
PLAN_RATES: dict[str, Rate] = {
    "free": Rate(300, 1),
    "pro": Rate(1000, 1),
    "business": Rate(3000, 1),
    "enterprise": Rate(10000, 1),
    "quarantine": Rate(1, 1),
}


def parse_rate(text: str) -> Rate:
    """`N/s`, `N/m` (`N/min`) or `N/h`, N a positive integer."""
    found = _RATE_RE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidLimit(f"--rate must look like 10/s, 600/m or 5000/h, got {text!r}")
    return Rate(int(found[1]), _UNITS[found[2]])


def check_count(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InvalidLimit(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Policy:
    """One tenant's limits as the limiter applies them."""

    tenant_id: str
    rate: Rate
    quota_day: int | None
    quota_month: int | None
    spend_cap_day: int | None  # atomic units
    price_atomic: int
    policy_header: bytes  # `RateLimit-Policy`, built once per snapshot
    books: bool  # whether a call needs the usage books (a quota or a spend cap)


def policy_for(tenant: Tenant) -> Policy:
    controls: Controls = tenant.controls
    if tenant.plan == "quarantine" or controls.rate is None:
        rate = PLAN_RATES.get(tenant.plan, PLAN_RATES["free"])
    else:
        rate = parse_rate(controls.rate)
    return Policy(
        tenant_id=tenant.tenant_id,
        rate=rate,
        quota_day=controls.quota_day,
        quota_month=controls.quota_month,
        spend_cap_day=controls.spend_cap_day,
        # What a call may take: a row-priced call is advertised (and capped) at a full page.
        price_atomic=tenant.call_price_atomic,
        policy_header=policy_header(rate),
        books=bool(controls.quota_day or controls.quota_month or controls.spend_cap_day),
    )


def policy_header(rate: Rate) -> bytes:
    """draft-ietf-httpapi-ratelimit-headers: `"<name>";q=<quota>;w=<window seconds>`."""
    return f'"rate";q={rate.limit};w={rate.window}'.encode()


def state_header(remaining: int, reset: int) -> bytes:
    """The `RateLimit` field: `"<name>";r=<remaining>;t=<seconds until reset>`."""
    return b'"rate";r=%d;t=%d' % (remaining, reset)
