"""What cataloguing a paid resource costs the facilitator per verify or settle, side by side:
every payment validated and written (`refresh_seconds=0`, the first payment of a declaration)
against the same declaration seen again within the refresh window (the memo), on a SQLite
file. The SDK's `extract_discovery_info` (JSON Schema validation) is most of the first.

    python bench/bench_catalogue_learn.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from x402.extensions.bazaar import DeclareMcpDiscoveryConfig, declare_mcp_discovery_extension
from x402.schemas import PaymentPayload, PaymentRequirements, ResourceInfo

from claw402.facilitator.catalogue import DiscoveryCatalogue
from claw402.facilitator.catalogue_store import open_catalogue_db


def _payment() -> tuple[PaymentPayload, PaymentRequirements]:
    terms = PaymentRequirements(
        scheme="exact", network="eip155:31337", asset="0x" + "11" * 20, amount="1000",
        pay_to="0x" + "22" * 20, max_timeout_seconds=60, extra={"name": "ClawUSD", "version": "1"},
    )  # fmt: skip
    declared = declare_mcp_discovery_extension(
        DeclareMcpDiscoveryConfig(
            tool_name="query",
            input_schema={"type": "object", "properties": {"_limit": {"type": "integer"}}},
            description="world cities by country",
            transport="streamable-http",
            example={"_limit": 10},
        )
    )
    payload = PaymentPayload(
        x402_version=2, payload={"signature": "0x"}, accepted=terms,
        resource=ResourceInfo(url="https://a.test/mcp"), extensions=declared,
    )  # fmt: skip
    return payload, terms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    paid = _payment()
    result: dict[str, object] = {"load_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as folder:
        for name, refresh in (("every_payment", 0.0), ("seen_within_window", 60.0)):
            engine = open_catalogue_db(f"sqlite:///{folder}/{name}.sqlite3")
            catalogue = DiscoveryCatalogue(engine, refresh_seconds=refresh)
            catalogue.learn(*paid)
            took = []
            for _ in range(args.calls):
                started = time.perf_counter()
                catalogue.learn(*paid)
                took.append(time.perf_counter() - started)
            result[f"{name}_median_ms"] = round(statistics.median(took) * 1000, 3)
            engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
