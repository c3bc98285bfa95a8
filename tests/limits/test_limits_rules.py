"""The limits' rules on their own: rates, windows, who the caller is, the in-memory counters
at the window's boundary, and deploy refusing limits it could not enforce."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from claw402.config import Settings
from claw402.limits import windows
from claw402.limits.caller import Callers, parse_proxies
from claw402.limits.counters import MemoryCounters
from claw402.limits.policy import InvalidLimit, Rate, parse_rate, policy_for
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry, RegistryError
from claw402.samples import CITIES


def test_rates_parse_and_print() -> None:
    assert parse_rate("10/s") == Rate(10, 1)
    assert parse_rate(" 600 / min ") == Rate(600, 60)
    assert str(parse_rate("5000/h")) == "5000/h"
    for bad in ("0/s", "10", "10/d", "-1/s", "ten/s", "1.5/s", ""):
        with pytest.raises(InvalidLimit):
            parse_rate(bad)


def test_windows_are_aligned_and_name_the_same_period() -> None:
    assert windows.fixed(100.2, 1) == (100, 1)
    assert windows.fixed(119.5, 60) == (1, 1)
    assert windows.fixed(120.0, 60) == (2, 60)
    at = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert windows.day(at) == ("d20261231", datetime(2027, 1, 1, tzinfo=UTC))
    assert windows.month(at) == ("m202612", datetime(2027, 1, 1, tzinfo=UTC))
    assert windows.month(datetime(2026, 2, 3, tzinfo=UTC))[1] == datetime(2026, 3, 1, tzinfo=UTC)


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    callers = Callers(parse_proxies("10.0.0.1, 192.168.0.0/16"))
    forged = {"x-forwarded-for": "1.2.3.4"}
    assert callers.client("8.8.8.8", forged) == "8.8.8.8"  # not a proxy: the header is ignored
    assert callers.client("10.0.0.1", forged) == "1.2.3.4"
    # The rightmost untrusted hop is the client; what it claims further left is not believed.
    chain = {"x-forwarded-for": "6.6.6.6, 5.5.5.5, 192.168.1.7"}
    assert callers.client("10.0.0.1", chain) == "5.5.5.5"
    assert callers.client("10.0.0.1", {"x-forwarded-for": "junk"}) == "10.0.0.1"
    assert callers.client("10.0.0.1", {}) == "10.0.0.1"
    assert Callers().client("10.0.0.1", forged) == "10.0.0.1"  # no proxies configured
    with pytest.raises(ValueError, match="not an address"):
        parse_proxies("10.0.0.1, proxy.example")


def test_memory_counters_at_the_boundary() -> None:
    now = [1000.25]
    counters = MemoryCounters(clock=lambda: now[0])
    hits = [counters.hit("t:a", 3, 1) for _ in range(4)]
    assert [(h.allowed, h.remaining) for h in hits] == [(True, 2), (True, 1), (True, 0), (False, 0)]
    assert hits[-1].reset == 1
    assert counters.hit("t:b", 3, 1).allowed  # another caller has its own count
    now[0] = 1001.0  # the next window
    assert (counters.hit("t:a", 3, 1).allowed, counters.hit("t:a", 3, 1).remaining) == (True, 1)


def test_deploy_keeps_limits_and_refuses_bad_ones_changing_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}")
    registry = Registry.open(settings)
    try:
        made = deploy(registry, settings, DeployRequest(
            source=CITIES, slug="cities", price="0.01", rate="5/m", quota_day=10,
            quota_month=100, spend_cap_day="2.5"))  # fmt: skip
        assert made.controls.rate == "5/m" and made.controls.spend_cap_day == 2_500_000
        policy = policy_for(made)
        assert (policy.rate, policy.quota_day, policy.quota_month) == (Rate(5, 60), 10, 100)
        assert policy.policy_header == b'"rate";q=5;w=60'
        for bad in ({"rate": "fast"}, {"quota_day": -1}, {"spend_cap_day": "lots"},
                    {"quota_month": 0, "rate": "0/s"}):  # fmt: skip
            with pytest.raises(RegistryError):
                deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", **bad))
        again = registry.get("cities")
        assert again is not None and again.controls == made.controls
        assert again.dataset is not None and again.dataset.version == 1
        kept = deploy(registry, settings, DeployRequest(source=CITIES, slug="cities"))
        assert kept.controls == made.controls  # a re-deploy that names none keeps them
        cleared = deploy(registry, settings, DeployRequest(
            source=CITIES, slug="cities", rate="0", quota_day=0, spend_cap_day="0"))  # fmt: skip
        assert (cleared.controls.rate, cleared.controls.quota_day) == (None, None)
        assert (cleared.controls.quota_month, cleared.controls.spend_cap_day) == (100, None)
        assert policy_for(cleared).rate == Rate(300, 1)  # the free plan's default
    finally:
        registry.close()
