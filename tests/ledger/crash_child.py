"""A process the crash tests SIGKILL at a chosen point (run as a script, never imported).

`settle`: what a gateway does once a payment is verified and the data is ready: the
facilitator's account submits the payer's signed authorization on chain (ClawUSD's
`transferWithAuthorization`), then the gateway would record the settled payment. It prints
the tx hash and stops just before that database write, where the test kills it.

`payout`: `PayoutRunner.run()`, stopping right after the `sending` row is recorded
(`recorded`) or right after the signed transfer is broadcast (`broadcast`).
"""

from __future__ import annotations

import json
import sys
import time


def hold(line: str) -> None:
    print(line, flush=True)
    time.sleep(120)  # the test kills us here
    raise SystemExit("not killed")


def rpc(url: str, method: str, params: list) -> object:
    from urllib.request import Request, urlopen

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    with urlopen(Request(url, body, {"content-type": "application/json"}), timeout=30) as r:
        answer = json.loads(r.read())
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]


def settle(args: dict) -> None:
    """Submit `transferWithAuthorization` calldata from the facilitator's (anvil) account.

    Plain JSON-RPC from the standard library: this process starts in ~50 ms instead of the
    seconds web3 takes to import.
    """
    url = args["rpc_url"]
    tx_hash = rpc(
        url,
        "eth_sendTransaction",
        [{"from": args["submitter"], "to": args["token"], "data": args["data"], "gas": "0x30000"}],
    )
    receipt = None
    while receipt is None:
        receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
        time.sleep(0.005)
    assert isinstance(receipt, dict) and receipt["status"] == "0x1", receipt
    hold(f"settled {tx_hash}")
    from claw402.payments.store import PaymentStore  # the write the crash prevents

    PaymentStore.settle  # noqa: B018


def payout(args: dict) -> None:
    from claw402.ledger.chain import TokenChain
    from claw402.ledger.payouts import Hooks, PayoutRunner
    from claw402.registry.db import make_engine

    def stop(stage: str):
        return lambda w: hold(f"{stage} {w.tx_hash}") if stage == args["stage"] else None

    runner = PayoutRunner(
        make_engine(args["database_url"]),
        TokenChain.connect(args["rpc_url"], args["token"]),
        args["treasury_key"],
        hooks=Hooks(recorded=stop("recorded"), broadcast=stop("broadcast")),
    )
    runner.run()


if __name__ == "__main__":
    mode, payload = sys.argv[1], json.loads(sys.argv[2])
    {"settle": settle, "payout": payout}[mode](payload)
