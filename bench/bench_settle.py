"""Verify and settle latency of the 402claw facilitator over HTTP on a local anvil.

    python bench/bench_settle.py                  # 50 payments, 5 ms receipt poll
    python bench/bench_settle.py --poll 0.1       # web3's default poll, for comparison

Payloads are signed up front by the official SDK client; each payment is then verified and
settled through the SDK's `HTTPFacilitatorClientSync` (one keep-alive connection), the way a
resource server calls a facilitator. Prints median and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from eth_account import Account
from x402 import x402ClientSync
from x402.http import HTTPFacilitatorClientSync
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements

from claw402.chain.devchain import start_dev_chain
from claw402.facilitator.client import facilitator_config
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="payments to verify and settle")
    parser.add_argument("--poll", type=float, default=0.005, help="receipt poll interval (s)")
    args = parser.parse_args()

    with start_dev_chain(payers=1) as chain:
        settings = FacilitatorSettings(
            rpc_url=chain.rpc_url,
            private_key=chain.facilitator.private_key,
            network=chain.network,
            receipt_poll_interval=args.poll,
        )
        requirements = PaymentRequirements(
            scheme="exact",
            network=chain.network,
            asset=chain.token,
            amount="10000",
            pay_to=chain.treasury.address,
            max_timeout_seconds=300,
            extra=chain.asset_extra,
        )
        payer = Account.from_key(chain.payers[0].private_key)
        client = x402ClientSync()
        client.register(chain.network, ExactEvmClientScheme(EthAccountSigner(payer)))
        client.set_spend_controls(
            {"allowed_assets": [{"network": chain.network, "asset": chain.token}]}
        )
        required = PaymentRequired(x402_version=2, accepts=[requirements])
        payloads = [client.create_payment_payload(required) for _ in range(args.n + 3)]

        with background_server(settings) as server:
            facilitator = HTTPFacilitatorClientSync(facilitator_config(server.url))
            verify_ms: list[float] = []
            settle_ms: list[float] = []
            for index, payload in enumerate(payloads):
                assert isinstance(payload, PaymentPayload)
                started = time.perf_counter()
                verified = facilitator.verify(payload, requirements)
                verified_at = time.perf_counter()
                settled = facilitator.settle(payload, requirements)
                settled_at = time.perf_counter()
                if not (verified.is_valid and settled.success):
                    raise SystemExit(f"payment {index} failed: {verified} {settled}")
                if index >= 3:  # the first calls warm connections and caches
                    verify_ms.append((verified_at - started) * 1000)
                    settle_ms.append((settled_at - verified_at) * 1000)
            facilitator.close()

    print(f"{args.n} payments, receipt poll {args.poll * 1000:g} ms")
    for name, samples in (("verify", verify_ms), ("settle", settle_ms)):
        print(
            f"  {name:6}  median {statistics.median(samples):6.1f} ms"
            f"   p99 {percentile(samples, 0.99):6.1f} ms"
            f"   min {min(samples):6.1f} ms"
        )


if __name__ == "__main__":
    main()
