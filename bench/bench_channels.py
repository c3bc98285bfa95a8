"""Paid calls through x402 `batch-settlement` channels against `exact`, side by side in one run.

One anvil, 402claw's facilitator (a child process) and one paid server (a child process, on
granian as `402claw serve` runs) offering a channel first and `exact` second at one price:
`--server gateway` (the default) is the 402claw gateway serving a tenant (the sample cities,
a one-row page), claims and settles done as `402claw channels claim|settle` do them;
`--server sdk` is a server built from the x402 SDK's own parts
(`tests/payments/channelserver.py`). Measured:
- a paid call end to end with the official Python client (`x402HttpxClient`: request, 402,
  sign, paid retry, 200), median and p99: through a channel (a voucher per call, the deposit
  made before) against `exact` (one EIP-3009 settlement on chain per call);
- where a channel call's time goes: the unpaid 402 round trip and a presigned voucher's
  request alone, through httpx and from a plain socket (the server's own time);
- the floor: the same client against a server that checks nothing and answers at once
  (`floor_app`): the client's own work and two HTTP round trips, which no seller avoids;
- on-chain transactions per 1,000 paid calls: one payer's 1,000 channel calls (its deposit,
  then the receiver's claim and settle) against `exact` (counted over `--calls`, scaled);
- sustained paid calls/s through channels from `--payers` payers, each sending its vouchers
  in order on its own connection (signed beforehand: the server's rate, not the signer's),
  against the unpaid 402 rate of the same server under wrk (2 threads, `--connections`).

    python bench/bench_channels.py [--server gateway|sdk] [--calls 200] [--payers 20]
                                    [--per-payer 500] [--duration 10] [--connections 50]
                                    [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "payments")]

from bench_paid_call import (  # noqa: E402
    child,
    facilitator_env,
    gateway_env,
    paid_calls,
    rps,
    serve_granian,
    summary,
)

# One load generator is one caller: the per-caller rate limit would answer it 429. The limits
# cost is measured by bench_limits.py; here the paths are measured without them.
os.environ.setdefault("CLAW402_LIMITS", "off")

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


def floor_app() -> Any:
    """The floor under any server: the 402 the gateway answered (`BENCH_FLOOR_402`), then 200
    for any payment header, with the receipt the SDK's client expects (its cumulative total
    moved by the price). It checks nothing and stores nothing, so a paid call against it is
    the official client's own work plus two HTTP round trips: no seller answers faster."""
    import base64

    required = os.environ["BENCH_FLOOR_402"].encode()
    unpaid = [(b"payment-required", required), (b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        header = dict(scope["headers"]).get(b"payment-signature")
        if header is None:
            await send({"type": "http.response.start", "status": 402, "headers": unpaid})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        payment = json.loads(base64.b64decode(header))
        raw, accepted = payment["payload"], payment["accepted"]
        cumulative = raw["voucher"]["maxClaimableAmount"]
        receipt = {
            "success": True,
            "payer": raw["channelConfig"]["payer"],
            "transaction": "",
            "network": accepted["network"],
            "extra": {
                "channelState": {"chargedCumulativeAmount": cumulative},
                "chargedAmount": accepted["amount"],
            },
        }
        paid = [(b"payment-response", base64.b64encode(json.dumps(receipt).encode()))]
        await send({"type": "http.response.start", "status": 200, "headers": paid})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    return app


def serve_child(port: int) -> None:
    serve_granian("bench_channels:app_from_env", port)


@contextmanager
def floor_server(required: str) -> Iterator[str]:
    """`floor_app` in a child on granian, answering `required` as its 402."""
    env = {"BENCH_FLOOR_402": required}
    with child("floor", env, PATH, script=__file__) as server:
        yield server + PATH


def client_floor(chain: Any, url: str, home: Path, calls: int) -> dict[str, Any]:
    """The official client's channel call against `floor_app` (the gateway's own 402), with
    the unpaid round trip alone beside it: what the client and HTTP cost by themselves."""
    from claw402.chain.wallet import Wallet

    required = httpx.get(url).headers["payment-required"]
    with floor_server(required) as floor:
        wallet = Wallet.create()  # nothing is checked: no funds needed
        client = client_for(wallet.private_key, chain, "batch", home / "floor", calls + 1)
        samples, _ = asyncio.run(paid_calls(floor, client, calls + 1))
        unpaid = asyncio.run(timed_in_order(floor, [None] * calls))
    return {"paid_call": summary(samples[1:]), "unpaid_402": summary(unpaid)}


def client_for(key: str, chain: Any, scheme: str, home: Path, deposit_calls: int) -> Any:
    from claw402.payments.channel_payer import ChannelTerms
    from claw402.payments.client import payment_client

    terms = ChannelTerms(
        home, max_deposit_atomic=deposit_calls * PRICE, deposit_atomic=deposit_calls * PRICE
    )
    assets = [(chain.network, chain.token)]
    return payment_client(key, PRICE, assets, scheme=scheme, channels=terms)  # type: ignore[arg-type]


def presigned_vouchers(url: str, key: str, home: Path, count: int, skip: int = 0) -> list[str]:
    """`count` voucher headers continuing this payer's channel (after `skip` vouchers sent
    without its client), in the order they must go."""
    from eth_account import Account
    from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
    from x402.mechanisms.evm.batch_settlement.client import sign_voucher
    from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id
    from x402.schemas import PaymentPayload

    from claw402.payments.channel_payer import channel_scheme, channel_storage
    from claw402.payments.voucher_signer import VoucherSigner

    required = decode_payment_required_header(httpx.get(url).headers["payment-required"])
    accepted = next(a for a in required.accepts if a.scheme == "batch-settlement")
    from claw402.payments.channel_payer import ChannelTerms

    config = channel_scheme(key, ChannelTerms(home, 0)).build_channel_config(accepted)
    channel_id = compute_channel_id(config, accepted.network)
    charged = int(channel_storage(home).get(channel_id.lower()).charged_cumulative_amount)  # type: ignore[union-attr]
    signer = VoucherSigner(Account.from_key(key))  # eth_account's signature, byte for byte
    headers = []
    for n in range(skip + 1, skip + count + 1):
        voucher = sign_voucher(signer, channel_id, str(charged + n * PRICE), accepted.network)
        raw = {"type": "voucher", "channelConfig": config.to_dict(), "voucher": voucher.to_dict()}
        payload = PaymentPayload(
            x402_version=2, payload=raw, accepted=accepted, resource=required.resource
        )
        headers.append(encode_payment_signature_header(payload))
    return headers


WRK_SCRIPT = """
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
end
function init(args)
  vouchers = {}
  for line in io.lines(args[1] .. "/" .. id .. ".txt") do vouchers[#vouchers + 1] = line end
  n = 1
end
-- the next voucher once an answer came: wrk may build a request it never sends
function request()
  return wrk.format("GET", nil, {["PAYMENT-SIGNATURE"] = vouchers[math.min(n, #vouchers)]})
end
function response(status, headers, body)
  n = n + 1
end
"""


def wrk_in_order(url: str, streams: list[list[str]], duration: int) -> dict[str, Any]:
    """The streams under wrk: one thread and one connection per stream, so each channel's
    vouchers go in order, one at a time. Paid = requests - non-2xx (a stream that ran out
    repeats its last voucher, refused). wrk's timeout is long: a request it gave up on would
    be sent again as the next voucher, out of order, and refused with the rest of its
    stream."""
    import re
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="claw402-bench-wrk-"))
    try:
        for n, stream in enumerate(streams):
            (folder / f"{n}.txt").write_text("\n".join(stream) + "\n")
        (folder / "in_order.lua").write_text(WRK_SCRIPT)
        out = subprocess.run(
            ["wrk", f"-t{len(streams)}", f"-c{len(streams)}", f"-d{duration}s", "--timeout", "30s",
             "-s", str(folder / "in_order.lua"), url, "--", str(folder)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    done = re.search(r"(\d+) requests in ([0-9.]+)(m?s)", out)
    assert done is not None, out
    seconds = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    paid = int(done.group(1)) - (int(refused.group(1)) if refused else 0)
    rate = round(paid / seconds)
    return {"paid_calls": paid, "calls_per_s": rate, "ran_out": refused is not None}


async def timed_in_order(url: str, headers: list[str | None]) -> list[float]:
    """Each request alone on one connection (None: unpaid), its latency in ms."""
    samples = []
    async with httpx.AsyncClient(timeout=30) as http:
        for header in headers:
            started = time.perf_counter()
            response = await http.get(url, headers={"PAYMENT-SIGNATURE": header} if header else {})
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == (200 if header else 402), response.text[:300]
    return samples


def raw_in_order(url: str, headers: list[str | None]) -> list[float]:
    """`timed_in_order` from a plain socket (HTTP/1.1 keep-alive, TCP_NODELAY), a short pause
    between requests so each finds the server idle: what the server takes, end to end."""
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    samples = []
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for header in headers:
            paid = f"PAYMENT-SIGNATURE: {header}\r\n" if header else ""
            request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{paid}\r\n"
            started = time.perf_counter()
            sock.sendall(request.encode())
            status = _read_response(sock)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == (200 if header else 402), status
            time.sleep(0.0005)
    return samples


def _read_response(sock: socket.socket) -> int:
    """Read one response with a Content-Length body; its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(v)
        for k, _, v in (x.partition(b":") for x in lines[1:])
        if k.lower() == b"content-length"
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1])


async def send_in_order(url: str, streams: list[list[str | None]]) -> tuple[int, float]:
    """Each stream on its own connection, in order, all streams at once: (200s, seconds).
    A None header sends the request unpaid (a free route)."""

    async def one(headers: list[str | None]) -> int:
        paid = 0
        async with httpx.AsyncClient(timeout=30) as http:
            for header in headers:
                sent = {"PAYMENT-SIGNATURE": header} if header else {}
                response = await http.get(url, headers=sent)
                assert response.status_code == 200, (response.status_code, response.text[:300])
                paid += 1
        return paid

    started = time.perf_counter()
    done = await asyncio.gather(*(one(s) for s in streams))
    return sum(done), time.perf_counter() - started


@contextmanager
def sdk_server(chain: Any, facilitator: str, home: Path) -> Iterator[tuple[str, Any, None]]:
    """The SDK-parts server in a child: its paid URL and how to claim and settle."""
    from eth_account import Account

    env = {
        "BENCH_FAC": facilitator,
        "BENCH_NET": chain.network,
        "BENCH_TOKEN": chain.token,
        "BENCH_TOKEN_NAME": chain.token_name,
        "BENCH_TOKEN_VERSION": chain.token_version,
        "BENCH_PAYTO": Account.create().address,
        "PYTHONPATH": os.pathsep.join(filter(None, [*sys.path[:2], os.environ.get("PYTHONPATH")])),
    }
    with child("channels", env, PATH, script=__file__) as server:
        yield server + PATH, lambda: httpx.post(server + "/_flush", timeout=120).json(), None


@contextmanager
def gateway_server(chain: Any, facilitator: str, home: Path) -> Iterator[tuple[str, Any, str]]:
    """The 402claw gateway (as `402claw serve` builds it) in a child, a tenant offering a
    channel and `exact`; claims and settles as `402claw channels claim|settle` do. Also the
    same data and query served free: the ceiling of any paid call's rate."""
    from claw402.config import Settings
    from claw402.payments.channels.manager import ChannelManager
    from claw402.payments.channels.terms import ChannelSchemes
    from claw402.payments.config import payment_config_from_env
    from claw402.registry.deploy import DeployRequest, deploy
    from claw402.registry.store import Registry
    from claw402.samples import CITIES

    settings = Settings(home, f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    deploy(registry, settings, DeployRequest(source=CITIES, slug="bench", price="0.001"))
    deploy(registry, settings, DeployRequest(source=CITIES, slug="free", price="0"))
    env = {
        **gateway_env(chain, settings, facilitator),
        "CLAW402_RPC_URL": chain.rpc_url,
        "BENCH_SERVER": "granian",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    config = payment_config_from_env(env)
    assert config is not None
    manager = ChannelManager(ChannelSchemes(config, registry.engine))

    def flush() -> dict[str, Any]:
        claimed, settled = manager.claim(), manager.settle()
        return {
            "claims": [row["transaction"] for row in claimed.claims],
            "vouchers": sum(row["vouchers"] for row in claimed.claims),
            "settle": [row["transaction"] for row in settled.settles],
        }

    try:
        with child("gateway", env, "/healthz") as gateway:
            query = "/v1/records?_limit=1"
            yield f"{gateway}/t/bench{query}", flush, f"{gateway}/t/free{query}"
    finally:
        registry.close()


SERVERS = {"sdk": sdk_server, "gateway": gateway_server}


def run(
    target: str,
    calls: int,
    payers: int,
    per_payer: int,
    duration: int,
    connections: int,
    wrk_per_payer: int = 0,
) -> dict[str, Any]:
    from claw402.chain.devchain import start_dev_chain

    results: dict[str, Any] = {"server": target, "price_atomic": PRICE, "calls": calls}
    home = Path(tempfile.mkdtemp(prefix="claw402-bench-channels-"))
    try:
        with (
            start_dev_chain(payers=2) as chain,
            child("facilitator", facilitator_env(chain), "/health") as facilitator,
            SERVERS[target](chain, facilitator, home) as (url, flush, free),
        ):
            results.update(
                measure(chain, url, flush, home, calls, payers, per_payer, wrk_per_payer, duration)
            )
            results["unpaid_402"] = rps(url, duration, connections, 402)
            if free is not None:
                results["free_query"] = rps(free, duration, connections, 200)
                # the sustained test's own client (httpx, one process) on the free route:
                # the most that client can measure, whatever the server
                done, seconds = asyncio.run(send_in_order(free, [[None] * per_payer] * payers))
                results["free_same_client"] = round(done / seconds)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    ratio = results["channels_sustained"]["calls_per_s"] / results["unpaid_402"]["rps"]
    results["sustained_over_402"] = round(ratio, 2)
    return results


def measure(
    chain: Any,
    url: str,
    flush: Any,
    home: Path,
    calls: int,
    payers: int,
    per_payer: int,
    wrk_per_payer: int = 0,
    duration: int = 5,
) -> dict[str, Any]:
    from claw402.chain.wallet import Wallet

    w3, results = chain.web3(), {}
    # 1,000 paid calls of one payer through a channel: latency and transactions.
    start = w3.eth.block_number
    client = client_for(chain.payers[0].private_key, chain, "batch", home / "p0", 1_000)
    samples, _ = asyncio.run(paid_calls(url, client, 1_000))
    flushed = flush()
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
    # Where a channel call's time goes: the 402 round trip and the paid request alone
    # (vouchers signed beforehand); the rest of `paid_call` is the client's own work.
    wallet = Wallet.create()
    chain.fund(wallet.address, 500 * PRICE)
    opener = client_for(wallet.private_key, chain, "batch", home / "parts", 450)
    asyncio.run(paid_calls(url, opener, 1))
    vouchers = presigned_vouchers(url, wallet.private_key, home / "parts", 400)
    results["parts"] = {
        "unpaid_402": summary(asyncio.run(timed_in_order(url, [None] * 200))),
        "presigned_voucher": summary(asyncio.run(timed_in_order(url, vouchers[:200]))),
        # the same requests from a plain socket: the server's time without httpx's own work
        "raw_unpaid_402": summary(raw_in_order(url, [None] * 200)),
        "raw_presigned_voucher": summary(raw_in_order(url, vouchers[200:])),
    }
    results["client_floor"] = client_floor(chain, url, home, 1_000)
    # Sustained rate: `payers` channels, vouchers in order on each connection.
    wallets = [Wallet.create() for _ in range(payers)]
    for wallet in wallets:
        chain.fund(wallet.address, (per_payer + wrk_per_payer + 10) * PRICE)
    streams, start = [], w3.eth.block_number  # counted from the first deposit
    for n, wallet in enumerate(wallets):
        folder = home / f"w{n}"
        opener = client_for(
            wallet.private_key, chain, "batch", folder, per_payer + wrk_per_payer + 1
        )
        asyncio.run(paid_calls(url, opener, 1))
        streams.append(presigned_vouchers(url, wallet.private_key, folder, per_payer))
    paid, seconds = asyncio.run(send_in_order(url, streams))
    rate = round(paid / seconds)
    if wrk_per_payer:  # the same channels, continued, under wrk (a client that is not the limit)
        more = [
            presigned_vouchers(url, w.private_key, home / f"w{n}", wrk_per_payer, per_payer)
            for n, w in enumerate(wallets)
        ]
        results["channels_sustained_wrk"] = wrk_in_order(url, more, duration)
        paid += results["channels_sustained_wrk"]["paid_calls"]
    flushed = flush()
    total = paid + payers  # the opening calls were paid too
    results["channels_sustained"] = {
        "payers": payers,
        "paid_calls": paid,
        "calls_per_s": rate,
        "tx_per_1000_calls": round((w3.eth.block_number - start) * 1_000 / total, 2),
        "claim": flushed,
    }
    return results


def report(r: dict[str, Any]) -> str:
    ch, ex, sus = r["channel"], r["exact"], r["channels_sustained"]
    return "\n".join(
        [
            f"paid call, official Python client (median / p99 ms): channel "
            f"{ch['paid_call']['median_ms']} / {ch['paid_call']['p99_ms']} "
            f"(first call with deposit {ch['deposit_call_ms']}), exact "
            f"{ex['paid_call']['median_ms']} / {ex['paid_call']['p99_ms']}",
            f"of which (medians, ms): the unpaid 402 round trip "
            f"{r['parts']['unpaid_402']['median_ms']}, a presigned voucher request "
            f"{r['parts']['presigned_voucher']['median_ms']}; the rest is the client; from a "
            f"plain socket (the server's own time): 402 {r['parts']['raw_unpaid_402']['median_ms']}"
            f", voucher {r['parts']['raw_presigned_voucher']['median_ms']}",
            f"the same client against a server that checks nothing (the floor; median / p99 "
            f"ms): paid call {r['client_floor']['paid_call']['median_ms']} / "
            f"{r['client_floor']['paid_call']['p99_ms']}, its unpaid round trip "
            f"{r['client_floor']['unpaid_402']['median_ms']}",
            f"on-chain transactions per 1,000 paid calls: channel {ch['tx_per_1000_calls']} "
            f"(deposit + claim + settle), exact {ex['tx_per_1000_calls']}",
            f"sustained through channels, {sus['payers']} payers: {sus['calls_per_s']} paid "
            f"calls/s ({sus['tx_per_1000_calls']} tx per 1,000 calls); unpaid 402 under "
            f"{r['unpaid_402']['tool']}: {r['unpaid_402']['rps']} req/s; "
            f"ratio {r['sustained_over_402']}",
            *(
                [
                    f"the same query served free: {r['free_query']['rps']} req/s under wrk, "
                    f"{r['free_same_client']} req/s from the sustained test's httpx client"
                ]
                if "free_query" in r
                else []
            ),
            *(
                [
                    f"sustained through channels under wrk (one connection per payer, "
                    f"vouchers in order): {r['channels_sustained_wrk']['calls_per_s']} paid "
                    f"calls/s; over the 402 rate: "
                    f"{r['channels_sustained_wrk']['calls_per_s'] / r['unpaid_402']['rps']:.2f}"
                ]
                if "channels_sustained_wrk" in r
                else []
            ),
        ]
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_serve":
        if sys.argv[2] == "channels":
            serve_child(int(sys.argv[3]))
        elif sys.argv[2] == "floor":
            serve_granian("bench_channels:floor_app", int(sys.argv[3]))
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
    parser.add_argument(
        "--server", choices=tuple(SERVERS), default="gateway", help="the server paid"
    )
    parser.add_argument(
        "--wrk-per-payer", type=int, default=0, help="more vouchers per payer, sent under wrk"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(
        args.server,
        args.calls,
        args.payers,
        args.per_payer,
        args.duration,
        args.connections,
        args.wrk_per_payer,
    )
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
