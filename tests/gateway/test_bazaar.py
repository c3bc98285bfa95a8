"""Every 402 of a priced tenant carries the Bazaar discovery extension, valid by the SDK's rules."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from gwpriced import priced_gateway
from x402.extensions.bazaar import (
    extract_discovery_info,
    validate_discovery_extension,
    validate_discovery_extension_spec,
)
from x402.extensions.bazaar.types import parse_discovery_extension

from claw402.discovery.bazaar import MAX_DECLARATION, TenantBazaar, printable, tenant_bazaar
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES


def _required(response: Any) -> dict[str, Any]:
    assert response.status_code == 402, response.text
    return json.loads(base64.b64decode(response.headers["payment-required"]))


def _payload(required: dict[str, Any]) -> dict[str, Any]:
    """What an x402 v2 payer sends back: the 402's resource and extensions, copied."""
    return {
        "x402Version": 2,
        "resource": required["resource"],
        "accepted": required["accepts"][-1],
        "payload": {},
        "extensions": required["extensions"],
    }


def _check(extension: dict[str, Any]) -> None:
    assert validate_discovery_extension_spec(extension).valid
    result = validate_discovery_extension(parse_discovery_extension(extension))
    assert result.valid, result.errors


def test_the_records_402_describes_the_query_grammar_and_the_page(tmp_path: Path) -> None:
    with priced_gateway(tmp_path, discovery=tenant_bazaar) as (_s, _r, _app, client):
        required = _required(client.get("/t/cities/v1/records"))
    resource = required["resource"]
    assert resource["serviceName"] == "cities"
    assert resource["tags"][:2] == ["dataset", "cities"] and "id" in resource["tags"]
    assert "50 rows" in resource["description"] and "$0.001 per call" in resource["description"]
    bazaar = required["extensions"]["bazaar"]
    assert "payment-identifier" in required["extensions"]  # still offered beside it
    _check(bazaar)
    info = bazaar["info"]
    assert info["input"]["method"] == "GET" and info["input"]["type"] == "http"
    query = bazaar["schema"]["properties"]["input"]["properties"]["queryParams"]
    assert {"_sort", "_limit", "_cursor"} <= set(query["properties"])
    # The schema takes what the gateway takes and refuses what it refuses: an unknown
    # column or operator, a wrong type, a text operator on a number.
    good = {"population__gt": 5, "city__icontains": "o", "capital": True, "_limit": 3,
            "country__in": ["Japan", "India"], "area_km2__isnull": False}  # fmt: skip
    jsonschema.validate(good, query)
    for bad in ({"populaton__gt": 5}, {"population__gt": "many"},
                {"population__icontains": "1"}, {"city__like": "x"}, {"_limit": 0}):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, query)
    assert len(json.dumps(bazaar)) < MAX_DECLARATION
    page = bazaar["schema"]["properties"]["output"]["properties"]["example"]
    row = page["properties"]["items"]["items"]["properties"]
    assert row["population"]["type"] == ["integer", "null"]
    assert "$ref" not in json.dumps(bazaar)  # nothing a facilitator would have to fetch

    found = extract_discovery_info(_payload(required), required["accepts"][-1])
    assert found is not None
    assert found.resource_url.endswith("/t/cities/v1/records") and found.method == "GET"
    assert found.service_name == "cities" and found.tags == resource["tags"]


def test_a_record_402_carries_its_route_template(tmp_path: Path) -> None:
    with priced_gateway(tmp_path, discovery=tenant_bazaar) as (settings, registry, _app, client):
        request = DeployRequest(source=CITIES, slug="towns", price="0.002", key="id",
                                name="Großstädte der Welt")  # fmt: skip
        deploy(registry, settings, request)
        required = _required(client.get("/t/towns/v1/records/7"))
        again = _required(client.get("/t/towns/v1/records/7"))  # the replayed 402
        unkeyed = _required(client.get("/t/cities/v1/records/7"))
    assert again == required
    bazaar = required["extensions"]["bazaar"]
    _check(bazaar)
    assert bazaar["routeTemplate"] == "/t/towns/v1/records/:key"
    assert bazaar["info"]["input"]["pathParams"] == {"key": "7"}
    path = bazaar["schema"]["properties"]["input"]["properties"]["pathParams"]
    assert path["properties"]["key"]["pattern"] == "^[+-]?[0-9]+$"
    assert required["resource"]["serviceName"] == "Gro-st-dte der Welt"
    found = extract_discovery_info(_payload(required), required["accepts"][-1])
    assert found is not None and found.resource_url.endswith("/t/towns/v1/records/:key")
    # A dataset without a key sells no record route: nothing to catalogue there.
    assert "bazaar" not in unkeyed["extensions"]


def test_without_discovery_the_402_is_unchanged(tmp_path: Path) -> None:
    with priced_gateway(tmp_path) as (_s, _r, _app, client):
        required = _required(client.get("/t/cities/v1/records"))
    assert set(required["extensions"]) == {"payment-identifier"}
    assert "serviceName" not in required["resource"]


def test_names_and_tags_keep_to_the_bazaar_caps(tmp_path: Path) -> None:
    assert printable("Città — großes Datenset über alles, was es gibt", 32) == (
        "Citt- - gro-es Datenset -ber all"
    )
    with priced_gateway(tmp_path) as (_s, registry, _app, _client):
        tenant = registry.get("cities")
    assert tenant is not None
    described = TenantBazaar(tenant)
    assert len(described.tags) == 5 and all(len(t) <= 32 for t in described.tags)
    assert described.extensions("http://x/t/cities/v1/schema") == {}


def test_a_wide_dataset_keeps_its_declaration_small(tmp_path: Path) -> None:
    """Payers echo the declaration in an 8 KiB payment header: past the budget the page
    schema goes, then the filters' schema; the grammar and the method stay."""
    wide = tmp_path / "wide.csv"
    names = [f"measurement_{i:03d}" for i in range(120)]
    wide.write_text(",".join(names) + "\n" + ",".join(str(i) for i in range(120)) + "\n")
    with priced_gateway(tmp_path, discovery=tenant_bazaar) as (settings, registry, _app, client):
        deploy(registry, settings, DeployRequest(source=wide, slug="wide", price="0.01"))
        required = _required(client.get("/t/wide/v1/records"))
    bazaar = required["extensions"]["bazaar"]
    _check(bazaar)
    assert len(json.dumps(bazaar, separators=(",", ":"))) <= MAX_DECLARATION
    query = bazaar["schema"]["properties"]["input"]["properties"]["queryParams"]
    assert "Filters AND together" in query["description"]
    assert bazaar["info"]["input"]["method"] == "GET"


def test_a_tenant_priced_by_rows_says_what_each_scheme_pays(tmp_path: Path) -> None:
    with priced_gateway(tmp_path, discovery=tenant_bazaar) as (settings, registry, _app, client):
        request = DeployRequest(source=CITIES, slug="rows", price_per_1k_rows="0.05")
        deploy(registry, settings, request)
        required = _required(client.get("/t/rows/v1/records"))
    description = required["resource"]["description"]
    assert "$0.05 per 1,000 rows returned" in description and "exact payment" in description
    assert required["accepts"][-1]["amount"] == "5000"  # a full page of 100 rows
    _check(required["extensions"]["bazaar"])
