"""Pages for people at the edge (`cloudflare/pages.py`) beside the gateway: the dispatcher's size
with and without the paywall page, what each priced tenant adds, and the latency of a JSON 402,
a browser's 402 (the paywall page) and the catalogue, on the gateway and under workerd.

    python bench/bench_edge_pages.py                    # 20 priced tenants, 200 requests each
    python bench/bench_edge_pages.py --tenants 50 --requests 500

One process, both runtimes side by side over one registry; on a loaded machine compare ratios
(page / JSON 402 within a runtime), not absolute times.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.tenant import build_tenant
from claw402.cloudflare.workerd import LocalEdge
from claw402.config import Settings
from claw402.gateway.app import Gateway
from claw402.payments.config import PaymentConfig
from claw402.payments.paywall import Paywall
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

ADDRESS = "0x" + "11" * 20
CONFIG = PaymentConfig(
    network="eip155:31337",
    asset=ADDRESS,
    asset_name="USD Coin",
    asset_version="2",
    facilitator_url="http://127.0.0.1:9",
    treasury=ADDRESS,
)
BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"
CASES = {
    "JSON 402": ("/t/c1/v1/records?country=Japan", {}),
    "paywall page": ("/t/c1/v1/records?country=Japan", {"accept": BROWSER}),
    "catalogue (HTML)": ("/", {"accept": BROWSER}),
    "catalogue (JSON)": ("/", {}),
}


def timings(client: httpx.Client, requests: int) -> dict[str, float]:
    out = {}
    for name, (path, headers) in CASES.items():
        for _ in range(10):  # warm: the gateway's first page runs node once
            client.get(path, headers=headers)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(path, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
        out[name] = statistics.median(samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
        registry = Registry.open(settings)
        tenants = [
            deploy(registry, settings, DeployRequest(source=CITIES, slug=f"c{i}", price="0.001"))
            for i in range(1, args.tenants + 1)
        ]
        plain = build_dispatcher(tenants)
        priced = build_dispatcher(tenants, DispatcherOptions(payment=CONFIG))
        one = build_dispatcher(tenants[:1], DispatcherOptions(payment=CONFIG))
        pages = len(gzip.compress(priced.module("paywallpage.js").content))
        pages_one = len(gzip.compress(one.module("paywallpage.js").content))
        print(f"dispatcher, {args.tenants} priced tenants:")
        for name, bundle in (("no payments", plain), ("with payments", priced)):
            print(f"  {name:14} {bundle.raw_size:>10,} B raw {bundle.gzip_size:>10,} B gzip")
        raw = len(priced.module("paywallpage.js").content)
        raw_one = len(one.module("paywallpage.js").content)
        per, per_raw = ((b - a) / max(args.tenants - 1, 1) for a, b in
                        ((pages_one, pages), (raw_one, raw)))  # fmt: skip
        print(f"  paywallpage.js {raw:,} B raw {pages:,} B gzip; "
              f"per priced tenant {per_raw:,.0f} B raw {per:,.0f} B gzip")  # fmt: skip

        gateway = Gateway(registry, guard=Paywall(CONFIG, registry.engine))
        results = {}
        with ServerThread(gateway) as server, httpx.Client(base_url=server.url) as client:
            results["gateway"] = timings(client, args.requests)
        with (
            LocalEdge(priced, [build_tenant(t) for t in tenants], start_timeout=120) as edge,
            httpx.Client(base_url=edge.url, timeout=30) as client,
        ):
            results["workerd"] = timings(client, args.requests)
        registry.close()
    print(f"median ms over {args.requests} requests:")
    print(f"  {'':18} {'gateway':>9} {'workerd':>9}")
    for name in CASES:
        print(f"  {name:18} {results['gateway'][name]:9.2f} {results['workerd'][name]:9.2f}")


if __name__ == "__main__":
    main()
