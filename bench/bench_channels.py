"""Paid calls through x402 `batch-settlement` channels against `exact`, side by side in one run.

One anvil, 402claw's facilitator (a child process), and one resource server (a child process,
granian as `402claw serve` runs) offering a channel first and `exact` second at one price,
built from the x402 SDK's own server parts (`tests/payments/channelserver.py`; the gateway's
own channel paywall comes with the `channels-server` work). Measured:
- a paid call end to end with the official Python client (`x402HttpxClient`: request, 402,
  sign, paid retry, 200), median and p99: through a channel (a voucher per call, the deposit
  made before) against `exact` (one EIP-3009 settlement on chain per call);
- on-chain transactions per 1,000 paid calls: one payer's 1,000 channel calls (its deposit,
  then the receiver's claim and settle) against `exact` (counted over `--calls`, scaled);
- sustained paid calls/s through channels from `--payers` payers, each sending its vouchers
  in order on its own connection (signed beforehand: the server's rate, not the signer's),
  against the unpaid 402 rate of the same server under wrk (2 threads, `--connections`).

    python bench/bench_channels.py [--calls 200] [--payers 20] [--per-payer 500]
                                    [--duration 10] [--connections 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "payments")]

from bench_paid_call import child, paid_calls, rps, summary  # noqa: E402

PRICE = 1_000  # $0.001
PATH = "/data"


def app_from_env() -> Any:
    """The channel server a child serves; granian's worker calls this factory."""
    from channelserver import build_app, build_http
    from x402.http import HTTPFacilitatorClientSync

    from claw402.facilitator.client import facilitator_config
    from claw402.gc_tuning import tune_gc

    env = os.environ
    facilitator = HTTPFacilitatorClientSync(facilitator_config(env["BENCH_FAC"]))
    extra = {"name": env["BENCH_TOKEN_NAME"], "version": env["BENCH_TOKEN_VERSION"]}
    http, _, manager = build_http(
        facilitator, env["BENCH_NET"], env["BENCH_TOKEN"], extra, env["BENCH_PAYTO"], PRICE
    )
    tune_gc()
    return build_app(http, manager)


def serve_child(port: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "bench_channels:app_from_env",
        factory=True,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        log_level="warning",
    ).serve()


def client_for(key: str, chain: Any, scheme: str, home: Path, deposit_calls: int) -> Any:
    from claw402.payments.channel_payer import ChannelTerms
    from claw402.payments.client import payment_client

    terms = ChannelTerms(
        home, max_deposit_atomic=deposit_calls * PRICE, deposit_atomic=deposit_calls * PRICE
    )
    assets = [(chain.network, chain.token)]
    return payment_client(key, PRICE, assets, scheme=scheme, channels=terms)  # type: ignore[arg-type]


def presigned_vouchers(url: str, key: str, home: Path, count: int) -> list[str]:
    """`count` voucher headers continuing this payer's channel, in the order they must go."""
    from eth_account import Account
    from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
    from x402.mechanisms.evm.batch_settlement.client import sign_voucher
    from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
    from x402.mechanisms.evm.signers import EthAccountSigner
    from x402.schemas import PaymentPayload

    from claw402.payments.channel_payer import channel_scheme, channel_storage

    required = decode_payment_required_header(httpx.get(url).headers["payment-required"])
    accepted = next(a for a in required.accepts if a.scheme == "batch-settlement")
    from claw402.payments.channel_payer import ChannelTerms

    config = channel_scheme(key, ChannelTerms(home, 0)).build_channel_config(accepted)
    channel_id = compute_channel_id(config, accepted.network)
    charged = int(channel_storage(home).get(channel_id.lower()).charged_cumulative_amount)  # type: ignore[union-attr]
    signer = EthAccountSigner(Account.from_key(key))
    headers = []
    for n in range(1, count + 1):
        voucher = sign_voucher(signer, channel_id, str(charged + n * PRICE), accepted.network)
        raw = {"type": "voucher", "channelConfig": config.to_dict(), "voucher": voucher.to_dict()}
        payload = PaymentPayload(
            x402_version=2, payload=raw, accepted=accepted, resource=required.resource
        )
        headers.append(encode_payment_signature_header(payload))
    return headers


async def send_in_order(url: str, streams: list[list[str]]) -> tuple[int, float]:
    """Each stream on its own connection, in order, all streams at once: (paid, seconds)."""

    async def one(headers: list[str]) -> int:
        paid = 0
        async with httpx.AsyncClient(timeout=30) as http:
            for header in headers:
                response = await http.get(url, headers={"PAYMENT-SIGNATURE": header})
                assert response.status_code == 200, (response.status_code, response.text[:300])
                paid += 1
        return paid

    started = time.perf_counter()
    done = await asyncio.gather(*(one(s) for s in streams))
    return sum(done), time.perf_counter() - started


def run(calls: int, payers: int, per_payer: int, duration: int, connections: int) -> dict[str, Any]:
    from eth_account import Account

    from claw402.chain.devchain import start_dev_chain
    from claw402.chain.wallet import Wallet

    results: dict[str, Any] = {"price_atomic": PRICE, "calls": calls}
    home = Path(tempfile.mkdtemp(prefix="claw402-bench-channels-"))
    with start_dev_chain(payers=2) as chain:
        w3 = chain.web3()
        env = {
            "BENCH_RPC": chain.rpc_url,
            "BENCH_NET": chain.network,
            "BENCH_FAC_KEY": chain.facilitator.private_key,
        }
        with child("facilitator", env, "/health") as facilitator:
            server_env = {
                **env,
                "BENCH_FAC": facilitator,
                "BENCH_TOKEN": chain.token,
                "BENCH_TOKEN_NAME": chain.token_name,
                "BENCH_TOKEN_VERSION": chain.token_version,
                "BENCH_PAYTO": Account.create().address,
                "PYTHONPATH": os.pathsep.join(sys.path[:2]),
            }
            with child("channels", server_env, PATH, script=__file__) as server:
                url = server + PATH
                # 1,000 paid calls of one payer through a channel: latency and transactions.
                start = w3.eth.block_number
                key = chain.payers[0].private_key
                client = client_for(key, chain, "batch", home / "p0", 1_000)
                samples, _ = asyncio.run(paid_calls(url, client, 1_000))
                flushed = httpx.post(server + "/_flush", timeout=60).json()
                results["channel"] = {
                    "paid_call": summary(samples[1:]),  # the first call is the deposit
                    "deposit_call_ms": round(samples[0], 2),
                    "tx_per_1000_calls": w3.eth.block_number - start,
                    "claim": flushed,
                }
                # exact on the same server: one settlement per call.
                start = w3.eth.block_number
                client = client_for(chain.payers[1].private_key, chain, "exact", home / "p1", 1)
                samples, _ = asyncio.run(paid_calls(url, client, calls))
                sent = w3.eth.block_number - start
                results["exact"] = {
                    "paid_call": summary(samples),
                    "tx_per_1000_calls": round(sent * 1_000 / calls),
                }
                # Sustained rate: `payers` channels, vouchers in order on each connection.
                wallets = [Wallet.create() for _ in range(payers)]
                for wallet in wallets:
                    chain.fund(wallet.address, (per_payer + 10) * PRICE)
                streams, start = [], w3.eth.block_number  # counted from the first deposit
                for n, wallet in enumerate(wallets):
                    folder = home / f"w{n}"
                    opener = client_for(wallet.private_key, chain, "batch", folder, per_payer + 1)
                    asyncio.run(paid_calls(url, opener, 1))
                    streams.append(presigned_vouchers(url, wallet.private_key, folder, per_payer))
                paid, seconds = asyncio.run(send_in_order(url, streams))
                flushed = httpx.post(server + "/_flush", timeout=120).json()
                total = paid + payers  # the opening calls were paid too
                results["channels_sustained"] = {
                    "payers": payers,
                    "paid_calls": paid,
                    "calls_per_s": round(paid / seconds),
                    "tx_per_1000_calls": round((w3.eth.block_number - start) * 1_000 / total, 2),
                    "claim": flushed,
                }
                results["unpaid_402"] = rps(url, duration, connections, 402)
    ratio = results["channels_sustained"]["calls_per_s"] / results["unpaid_402"]["rps"]
    results["sustained_over_402"] = round(ratio, 2)
    return results


def report(r: dict[str, Any]) -> str:
    ch, ex, sus = r["channel"], r["exact"], r["channels_sustained"]
    return "\n".join(
        [
            f"paid call, official Python client (median / p99 ms): channel "
            f"{ch['paid_call']['median_ms']} / {ch['paid_call']['p99_ms']} "
            f"(first call with deposit {ch['deposit_call_ms']}), exact "
            f"{ex['paid_call']['median_ms']} / {ex['paid_call']['p99_ms']}",
            f"on-chain transactions per 1,000 paid calls: channel {ch['tx_per_1000_calls']} "
            f"(deposit + claim + settle), exact {ex['tx_per_1000_calls']}",
            f"sustained through channels, {sus['payers']} payers: {sus['calls_per_s']} paid "
            f"calls/s ({sus['tx_per_1000_calls']} tx per 1,000 calls); unpaid 402 under "
            f"{r['unpaid_402']['tool']}: {r['unpaid_402']['rps']} req/s; "
            f"ratio {r['sustained_over_402']}",
        ]
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_serve":
        if sys.argv[2] == "channels":
            serve_child(int(sys.argv[3]))
        else:
            from bench_paid_call import serve_child as serve_other

            serve_other(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="exact calls measured")
    parser.add_argument("--payers", type=int, default=20)
    parser.add_argument("--per-payer", type=int, default=500, help="vouchers per payer")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.calls, args.payers, args.per_payer, args.duration, args.connections)
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
