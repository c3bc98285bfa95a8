"""The facilitator's Bazaar catalogue outlives the facilitator: real payments on anvil through
a facilitator keeping its catalogue in a SQLite file, a restart on the same file, and the SDK's
discovery client (`with_bazaar`) still finding what was paid for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from paidstack import Stack
from x402.extensions.bazaar import (
    ListDiscoveryResourcesParams,
    SearchDiscoveryResourcesParams,
    with_bazaar,
)
from x402.http import FacilitatorConfig, HTTPFacilitatorClientSync

from claw402.chain.token import usdc
from claw402.discovery.bazaar import tenant_bazaar
from claw402.facilitator.catalogue import DiscoveryCatalogue
from claw402.facilitator.catalogue_store import (
    CatalogueSchemaError,
    bazaar_resources,
    facilitator_meta,
    open_catalogue_db,
)
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings
from claw402.payments.paywall import Paywall


def _settings(stack: Stack, url: str) -> FacilitatorSettings:
    chain = stack.chain
    return FacilitatorSettings(
        rpc_url=chain.rpc_url,
        private_key=chain.facilitator.private_key,
        network=chain.network,
        database_url=url,
    )


def _listed(facilitator_url: str, **params: str) -> tuple[list[object], list[object]]:
    client = HTTPFacilitatorClientSync(FacilitatorConfig(url=facilitator_url))
    with with_bazaar(client) as c:
        listed = c.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(type="http"))
        found = c.extensions.bazaar.search(SearchDiscoveryResourcesParams(query="beta dataset"))
    return listed.items, found.resources


def test_the_catalogue_survives_a_restart_of_the_facilitator(stack: Stack, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'facilitator.sqlite3'}"
    with background_server(_settings(stack, url)) as facilitator:
        config = replace(stack.config, facilitator_url=facilitator.url)
        gateway = stack.serve(Paywall(config, stack.registry.engine, discovery=tenant_bazaar))
        for country in ("Japan", "France"):  # the same resource paid twice: one entry
            paid = stack.pay(
                f"{gateway}/t/beta/v1/records?country={country}", stack.payer(), usdc(1)
            )
            assert paid.paid, paid.response.text
        before, _ = _listed(facilitator.url)
    resource = f"{gateway}/t/beta/v1/records"
    assert [i.resource for i in before] == [resource]

    with background_server(_settings(stack, url)) as restarted:
        items, found = _listed(restarted.url)
        by_payee = httpx.get(
            f"{restarted.url}/discovery/resources",
            params={"payTo": stack.creator.address, "scheme": "exact"},
            timeout=10,
        ).json()
    (item,) = items
    assert item.resource == resource and item.service_name == "beta"
    assert len(item.accepts or []) == 1  # merged, not repeated
    assert item.accepts[0]["amount"] == str(stack.tenants["beta"].price_atomic)
    assert (item.extensions or {})["bazaar"]["info"]["input"]["method"] == "GET"
    assert [r.resource for r in found] == [resource]
    assert [i["resource"] for i in by_payee["items"]] == [resource]


def test_a_bad_declaration_is_not_catalogued_and_the_payment_still_goes_through(
    stack: Stack, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'facilitator.sqlite3'}"
    with background_server(_settings(stack, url)) as facilitator:
        config = replace(stack.config, facilitator_url=facilitator.url)
        gateway = stack.serve(Paywall(config, stack.registry.engine, discovery=tenant_bazaar))
        payer = stack.payer()
        bent = stack.sign(payer, "gamma", extensions={"bazaar": {"info": "not a declaration"}})
        r = stack.get("/t/gamma/v1/records", bent, base=gateway)
        assert r.status_code == 200, r.text
        assert r.headers["payment-response"]
        listed = httpx.get(f"{facilitator.url}/discovery/resources", timeout=10).json()
    assert listed["items"] == [] and listed["pagination"]["total"] == 0


def test_an_unreadable_row_is_skipped_and_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'facilitator.sqlite3'}"
    engine = open_catalogue_db(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(bazaar_resources).values(
                resource="https://x.test/r",
                tool="GET",
                kind="http",
                touched=1,
                body="{not json",
                words="https://x.test/r",
            )
        )
    catalogue = DiscoveryCatalogue(open_catalogue_db(url))  # reopened: the version matches
    assert catalogue.list({})["items"] == []
    assert catalogue.search({"query": "x.test"})["resources"] == []
    with engine.begin() as conn:
        conn.execute(
            sa.update(facilitator_meta)
            .where(facilitator_meta.c.key == "schema_version")
            .values(value="99")
        )
    engine.dispose()
    with pytest.raises(CatalogueSchemaError, match="schema version 99"):
        open_catalogue_db(url)
