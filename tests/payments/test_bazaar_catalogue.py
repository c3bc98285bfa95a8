"""The facilitator catalogues what was paid for: a real paid call on anvil, then the SDK's
discovery client (`with_bazaar`) lists the resource with the 402's Bazaar declaration."""

from __future__ import annotations

import httpx
import jsonschema
import pytest
from paidstack import Stack
from x402.extensions.bazaar import (
    ListDiscoveryResourcesParams,
    SearchDiscoveryResourcesParams,
    with_bazaar,
)
from x402.http import FacilitatorConfig, HTTPFacilitatorClientSync
from x402.http.utils import decode_payment_required_header

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.discovery.bazaar import tenant_bazaar
from claw402.payments.paywall import Paywall


@pytest.fixture(scope="module")
def discoverable(stack: Stack) -> str:
    """A gateway on the stack's registry whose 402s carry the Bazaar extension."""
    return stack.serve(Paywall(stack.config, stack.registry.engine, discovery=tenant_bazaar))


def test_a_paid_call_lands_in_the_facilitators_catalogue(
    stack: Stack, discoverable: str, payer: Wallet
) -> None:
    url = f"{discoverable}/t/beta/v1/records?country=Japan"
    before = httpx.get(f"{stack.facilitator_url}/supported", timeout=10).json()
    assert "bazaar" in before["extensions"]

    paid = stack.pay(url, payer, max_price_atomic=usdc(1))
    assert paid.paid, paid.response.text

    with with_bazaar(HTTPFacilitatorClientSync(FacilitatorConfig(url=stack.facilitator_url))) as c:
        listed = c.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(type="http"))
        by_payee = c.extensions.bazaar.list_resources(
            ListDiscoveryResourcesParams(pay_to=stack.creator.address, scheme="exact")
        )
        nobody = c.extensions.bazaar.list_resources(
            ListDiscoveryResourcesParams(network="eip155:1")
        )
        found = c.extensions.bazaar.search(SearchDiscoveryResourcesParams(query="beta Tokyo"))
        search = c.extensions.bazaar.search(SearchDiscoveryResourcesParams(query="beta dataset"))
    resource = f"{discoverable}/t/beta/v1/records"  # the query string is never catalogued
    (item,) = [i for i in listed.items if i.resource == resource]
    assert item.type == "http" and item.x402_version == 2
    assert item.service_name == "beta" and "dataset" in (item.tags or [])
    assert item.accepts and item.accepts[0]["payTo"] == stack.creator.address
    assert item.accepts[0]["amount"] == str(stack.tenants["beta"].price_atomic)
    bazaar = (item.extensions or {})["bazaar"]
    assert bazaar["info"]["input"]["method"] == "GET"
    query = bazaar["schema"]["properties"]["input"]["properties"]["queryParams"]
    jsonschema.validate({"country__in": ["Japan"], "_limit": 5}, query)  # what an agent sends
    assert "payment-identifier" not in (item.extensions or {})  # the payer's, not the resource's
    assert [i.resource for i in by_payee.items] == [resource]
    assert nobody.items == [] and nobody.pagination.total == 0
    assert found.resources == []  # every word must match
    assert [r.resource for r in search.resources] == [resource]


def test_an_unpaid_402_catalogues_nothing_and_bad_queries_are_400(
    stack: Stack, discoverable: str
) -> None:
    r = httpx.get(f"{discoverable}/t/gamma/v1/records", timeout=10)
    assert r.status_code == 402
    assert "bazaar" in decode_payment_required_header(r.headers["payment-required"]).extensions
    listed = httpx.get(f"{stack.facilitator_url}/discovery/resources", timeout=10).json()
    assert all("/t/gamma/" not in i["resource"] for i in listed["items"])
    for query in ("limit=0", "offset=-1", "limit=many"):
        bad = httpx.get(f"{stack.facilitator_url}/discovery/resources?{query}", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_query", query
    empty = httpx.get(f"{stack.facilitator_url}/discovery/search?query=", timeout=10)
    assert empty.status_code == 400
