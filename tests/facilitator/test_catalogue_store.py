"""The Bazaar catalogue on both backends: what a payment declares is stored, read back by a
new engine (a restarted facilitator), merged per resource, bounded, filtered and searched."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from x402.extensions.bazaar import DeclareMcpDiscoveryConfig, declare_mcp_discovery_extension
from x402.schemas import PaymentPayload, PaymentRequirements, ResourceInfo

from claw402.facilitator.catalogue import BadQuery, DiscoveryCatalogue
from claw402.facilitator.catalogue_store import (
    SCHEMA_VERSION,
    bazaar_resources,
    facilitator_meta,
    open_catalogue_db,
)

NETWORK = "eip155:31337"
ASSET = "0x" + "11" * 20


def _paid(url: str, tool: str, pay_to: str, amount: str = "1000") -> tuple[PaymentPayload, ...]:
    terms = PaymentRequirements(
        scheme="exact", network=NETWORK, asset=ASSET, amount=amount, pay_to=pay_to,
        max_timeout_seconds=60, extra={"name": "ClawUSD", "version": "1"},
    )  # fmt: skip
    declared = declare_mcp_discovery_extension(
        DeclareMcpDiscoveryConfig(
            tool_name=tool,
            input_schema={"type": "object", "properties": {"_limit": {"type": "integer"}}},
            description=f"{tool}: world cities by country",
            transport="streamable-http",
            example={"_limit": 10},
        )
    )
    payload = PaymentPayload(
        x402_version=2,
        payload={"signature": "0x"},
        accepted=terms,
        resource=ResourceInfo(url=url, description="cities"),
        extensions=declared,
    )
    return payload, terms  # type: ignore[return-value]


def test_entries_outlive_the_engine_and_merge_per_resource(database_url: str) -> None:
    payee, other = "0x" + "22" * 20, "0x" + "33" * 20
    first = DiscoveryCatalogue(open_catalogue_db(database_url))
    assert first.learn(*_paid("https://a.test/mcp", "query", payee))
    assert first.learn(*_paid("https://a.test/mcp", "query", payee, amount="2000"))  # re-priced
    assert first.learn(*_paid("https://a.test/mcp", "query", other))  # another payee: kept too
    assert first.learn(*_paid("https://b.test/mcp", "query", payee))
    first.engine.dispose()

    again = DiscoveryCatalogue(open_catalogue_db(database_url))  # the restart
    listed = again.list({})
    assert [i["resource"] for i in listed["items"]] == ["https://b.test/mcp", "https://a.test/mcp"]
    a = listed["items"][1]
    assert a["type"] == "mcp" and a["extensions"]["bazaar"]["info"]["input"]["toolName"] == "query"
    assert [(t["payTo"], t["amount"]) for t in a["accepts"]] == [(other, "1000"), (payee, "2000")]
    assert [i["resource"] for i in again.list({"payTo": other})["items"]] == ["https://a.test/mcp"]
    assert again.list({"type": "http"})["pagination"]["total"] == 0
    assert again.list({"limit": "1", "offset": "1"})["items"] == [a]
    assert [r["resource"] for r in again.search({"query": "CITIES b.test"})["resources"]] == [
        "https://b.test/mcp"
    ]
    with pytest.raises(BadQuery):
        again.search({"query": " "})
    with again.engine.connect() as conn:
        version = conn.execute(sa.select(facilitator_meta.c.value)).scalar()
        rows = conn.execute(sa.select(sa.func.count()).select_from(bazaar_resources)).scalar()
    assert version == str(SCHEMA_VERSION) and rows == 2
    again.engine.dispose()


def test_the_least_recently_paid_go_first_past_the_bound(database_url: str) -> None:
    catalogue = DiscoveryCatalogue(open_catalogue_db(database_url), 2, refresh_seconds=0)
    for host in ("a", "b", "c"):
        catalogue.learn(*_paid(f"https://{host}.test/mcp", "query", "0x" + "22" * 20))
    catalogue.learn(*_paid("https://b.test/mcp", "query", "0x" + "22" * 20))  # b paid again
    catalogue.learn(*_paid("https://d.test/mcp", "query", "0x" + "22" * 20))
    assert [i["resource"] for i in catalogue.list({})["items"]] == [
        "https://d.test/mcp",
        "https://b.test/mcp",
    ]
    catalogue.engine.dispose()


def test_a_payment_without_a_declaration_is_not_catalogued(database_url: str) -> None:
    catalogue = DiscoveryCatalogue(open_catalogue_db(database_url))
    payload, terms = _paid("https://a.test/mcp", "query", "0x" + "22" * 20)
    assert not catalogue.learn(payload.model_copy(update={"extensions": None}), terms)
    assert len(catalogue) == 0
    catalogue.engine.dispose()


def test_the_same_declaration_is_stored_once_a_minute(database_url: str) -> None:
    """A paid API's every verify and settle declares the same: validated and written once."""
    catalogue = DiscoveryCatalogue(open_catalogue_db(database_url))
    payee = "0x" + "22" * 20
    assert catalogue.learn(*_paid("https://a.test/mcp", "query", payee))
    catalogue.learn(*_paid("https://b.test/mcp", "query", payee))
    assert catalogue.learn(*_paid("https://a.test/mcp", "query", payee))  # within the minute
    assert [i["resource"] for i in catalogue.list({})["items"]] == [
        "https://b.test/mcp",
        "https://a.test/mcp",
    ]
    catalogue.learn(*_paid("https://a.test/mcp", "query", payee, amount="5"))  # new terms
    (first, _) = catalogue.list({})["items"]
    assert first["resource"] == "https://a.test/mcp" and first["accepts"][0]["amount"] == "5"
    catalogue.engine.dispose()


def test_two_facilitators_on_one_database_keep_one_row_with_every_payee(database_url: str) -> None:
    """Facilitators sharing the database (two engines) catalogue at once: one row per
    resource, every payee's terms merged, none lost to a race."""
    shared = [DiscoveryCatalogue(open_catalogue_db(database_url), refresh_seconds=0) for _ in "ab"]
    payees = ["0x" + f"{n:040x}" for n in range(1, 9)]

    def learn(n: int) -> None:
        shared[n % 2].learn(*_paid("https://a.test/mcp", "query", payees[n]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(learn, range(8)))
    (item,) = shared[0].list({})["items"]
    assert sorted(t["payTo"] for t in item["accepts"]) == sorted(payees)
    for catalogue in shared:
        catalogue.engine.dispose()
