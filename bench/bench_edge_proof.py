"""What proving a payment header's payer costs: the dispatch Worker's `templates/proof.js`
(@noble secp256k1 + keccak-256) run by node's V8 and under workerd (a probe Worker proving
`--calls` headers per request, timed from outside against as many unreadable headers: the
Workers clock stands still while code runs) against the gateway's
`limits.signer.proven_payer` (coincurve), same headers, one run; and what the proof adds to
the dispatcher bundle (raw and gzip bytes, as `cloudflare/sizes.py` counts them).

    python bench/bench_edge_proof.py [--calls 300]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from eth_account import Account
from x402.mechanisms.evm.batch_settlement.constants import VOUCHER_TYPES
from x402.mechanisms.evm.batch_settlement.utils import get_batch_settlement_eip712_domain

from claw402.chain.eip3009 import Authorization, Domain, sign_authorization
from claw402.cloudflare.bundle import Module, WorkerBundle
from claw402.cloudflare.dispatcher import build_dispatcher, vouchers_module
from claw402.cloudflare.noble import noble_modules
from claw402.cloudflare.workerd import LocalEdge, template
from claw402.limits.signer import proven_payer
from claw402.payments.config import PaymentConfig
from claw402.payments.voucher_signer import VoucherSigner

TOKEN, PAY_TO = "0x" + "ab" * 20, "0x" + "cd" * 20
DOMAIN = Domain("USDC", "2", 84532, TOKEN)
WALLET, OTHER = Account.from_key("0x" + "11" * 32), Account.from_key("0x" + "22" * 32)
NODE = """
import { readFileSync } from "node:fs";
const t0 = performance.now();
const { provenPayer } = await import("./proof.js");
const imported = performance.now() - t0;
const { calls, headers } = JSON.parse(readFileSync("headers.json"));
const out = { importMs: imported, perCallMs: {} };
for (const [name, h] of Object.entries(headers)) {
  provenPayer(h);
  const s = performance.now();
  for (let k = 0; k < calls; k++) provenPayer(h);
  out.perCallMs[name] = (performance.now() - s) / calls;
}
console.log(JSON.stringify(out));
"""

PROBE = b"""
import { provenPayer } from "./proof.js";
export default {
  async fetch(request) {
    const { header, calls } = await request.json();
    let last = null;
    for (let k = 0; k < calls; k++) last = provenPayer(header);
    return Response.json(last);
  },
};
"""


def workerd_ms(payment: PaymentConfig, signed: dict[str, str], calls: int) -> dict[str, float]:
    """Per-call milliseconds under workerd: best of 5 requests, less an unreadable header's."""
    modules = (Module("probe.js", PROBE), Module("proof.js", template("proof.js")),
               vouchers_module(payment), *noble_modules())  # fmt: skip
    bundle = WorkerBundle("proof-bench", modules, {"main_module": "probe.js"})
    with LocalEdge(None, [bundle]) as edge, httpx.Client() as client:

        def best(header: str) -> float:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                client.post(edge.url, json={"header": header, "calls": calls}, timeout=120)
                times.append(time.perf_counter() - started)
            return min(times)

        floor = best("not-a-header")
        return {name: (best(h) - floor) / calls * 1000 for name, h in signed.items()}


def _header(payload: dict, scheme: str) -> str:
    accepted = {"scheme": scheme, "network": "eip155:84532", "asset": TOKEN, "amount": "1000",
                "payTo": PAY_TO, "maxTimeoutSeconds": 60,
                "extra": {"name": DOMAIN.name, "version": DOMAIN.version}}  # fmt: skip
    data = {"x402Version": 2, "accepted": accepted, "payload": payload}
    return base64.b64encode(orjson.dumps(data)).decode()


def headers() -> dict[str, str]:
    def exact(signer: Account) -> str:
        auth = Authorization.new(WALLET.address, PAY_TO, 1000, valid_for=3600)
        signature = "0x" + sign_authorization(signer.key.hex(), auth, DOMAIN).hex()
        return _header({"authorization": auth.as_x402(), "signature": signature}, "exact")

    channel = "0x" + os.urandom(32).hex()
    raw = VoucherSigner(WALLET).sign_typed_data(
        get_batch_settlement_eip712_domain(84532), VOUCHER_TYPES, "Voucher",
        {"channelId": channel, "maxClaimableAmount": 5000})  # fmt: skip
    config = {"payer": WALLET.address, "payerAuthorizer": "0x" + "00" * 20, "receiver": PAY_TO,
              "receiverAuthorizer": PAY_TO, "token": TOKEN, "salt": "0x" + "00" * 32,
              "withdrawDelay": 900}  # fmt: skip
    voucher = {"type": "voucher", "channelConfig": config,
               "voucher": {"channelId": channel, "maxClaimableAmount": "5000",
                           "signature": "0x" + raw.hex()}}  # fmt: skip
    return {"exact": exact(WALLET), "forged": exact(OTHER),
            "voucher": _header(voucher, "batch-settlement")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    signed = headers()
    payment = PaymentConfig(network="eip155:84532", asset=TOKEN, asset_name="USDC",
                            asset_version="2", facilitator_url="http://127.0.0.1:9",
                            treasury=PAY_TO)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-edge-proof-") as folder:
        where = Path(folder)
        for module in (*noble_modules(), vouchers_module(payment)):
            (where / module.name).write_bytes(module.content)
        (where / "proof.js").write_bytes(template("proof.js"))
        (where / "package.json").write_text('{"type": "module"}')
        (where / "headers.json").write_text(json.dumps({"calls": args.calls, "headers": signed}))
        (where / "bench.mjs").write_text(NODE)
        node = json.loads(subprocess.run(["node", "bench.mjs"], cwd=where, check=True,
                                         capture_output=True, text=True).stdout)  # fmt: skip
    inworkerd = workerd_ms(payment, signed, args.calls)
    python = {}
    for name, header in signed.items():
        proven_payer(header)
        started = time.perf_counter()
        for _ in range(args.calls):
            proven_payer(header)
        python[name] = (time.perf_counter() - started) / args.calls * 1000
    bundle = build_dispatcher([], None)
    added = [m for m in bundle.modules if m.name in {"proof.js", "vouchers.js"}
             or m.name.startswith("noble-")]  # fmt: skip
    print(f"load: {os.getloadavg()[0]:.2f}")
    print(f"proof.js import (node): {node['importMs']:.1f} ms")
    for name in signed:
        js, wd, py = node["perCallMs"][name], inworkerd[name], python[name]
        print(f"{name:8} proof.js node {js:.3f} ms/call, workerd {wd:.3f} ms/call; "
              f"proven_payer {py:.3f} ms/call (workerd x{wd / py:.1f})")  # fmt: skip
    raw = sum(len(m.content) for m in added)
    packed = sum(len(gzip.compress(m.content, compresslevel=6, mtime=0)) for m in added)
    print(f"added to the dispatcher: {len(added)} modules, {raw} bytes, {packed} gzip bytes "
          f"(bundle now {bundle.raw_size} bytes, {bundle.gzip_size} gzip)")  # fmt: skip


if __name__ == "__main__":
    main()
