"""What the dispatch Worker needs to apply a tenant's limits, computed by `policy.policy_for`
so the edge and the gateway read one plan table and one set of tenant settings: the Worker
gets numbers and header values, never a rule of its own to keep in step."""

from __future__ import annotations

from typing import Any

from claw402.limits.policy import policy_for
from claw402.registry.models import Tenant

# Integers the Worker holds as JS numbers: exact up to 2**53 - 1.
_MAX_SAFE = 2**53 - 1


def edge_controls(tenant: Tenant) -> dict[str, Any]:
    """The tenant's rate, quotas and daily spend cap as the Worker's limits step reads them
    (`templates/limits.js`): the same `Policy` the gateway's limiter applies."""
    policy = policy_for(tenant)
    controls = {
        "rate": {
            "limit": policy.rate.limit,
            "window": policy.rate.window,
            "text": str(policy.rate),
        },
        "policyHeader": policy.policy_header.decode(),
        "quotaDay": policy.quota_day,
        "quotaMonth": policy.quota_month,
        "spendCapDay": policy.spend_cap_day,
        "priceAtomic": policy.price_atomic,  # what one call takes from the spend cap
        "books": policy.books,
    }
    for name in ("quotaDay", "quotaMonth", "spendCapDay", "priceAtomic"):
        value = controls[name]
        if value is not None and value > _MAX_SAFE:
            raise ValueError(f"{tenant.slug}: {name} {value} is too large for the edge")
    return controls
