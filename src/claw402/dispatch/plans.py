"""Plans and the limits they grant; a tenant's positive overrides win over its plan."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    cpu_ms: int
    sub_requests: int

    def payload(self) -> dict[str, int]:
        """The dispatch payload: our names and Cloudflare's, so either side can read it."""
        return {
            "cpuMs": self.cpu_ms,
            "subRequests": self.sub_requests,
            "cpu_ms": self.cpu_ms,
            "subrequests": self.sub_requests,
        }


PLANS: dict[str, Limits] = {
    "free": Limits(50, 10),
    "pro": Limits(200, 50),
    "business": Limits(350, 100),
    "enterprise": Limits(600, 250),
    "quarantine": Limits(25, 3),
}

# The page-size cap a plan gives the data API (self-hosted meaning of a plan).
MAX_PAGE_SIZE: dict[str, int] = {
    "free": 100,
    "pro": 1000,
    "business": 5000,
    "enterprise": 10000,
    "quarantine": 10,
}


def max_page_size(plan: str) -> int:
    """The largest page a plan's callers may ask for; an unknown plan gets the free plan's."""
    return MAX_PAGE_SIZE.get(plan, MAX_PAGE_SIZE["free"])


def check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise ValueError(f"unknown plan {plan!r}: choose one of {', '.join(PLANS)}")
    return plan


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def effective_limits(plan: str, cpu_ms: object = None, sub_requests: object = None) -> Limits:
    base = PLANS.get(plan, PLANS["free"])
    return Limits(_positive(cpu_ms) or base.cpu_ms, _positive(sub_requests) or base.sub_requests)
