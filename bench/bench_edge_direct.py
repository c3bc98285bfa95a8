"""What booking edge payments to creators' own wallets costs a `reconcile` run.

`ledger.edge_direct` starts from the edge's `payment_settled` events that pay someone other
than the treasury and skips those already booked (an anti-join on the ledger's tx hashes),
so its query grows with every edge settlement ever made to a creator's wallet. This seeds
`--events` such events already booked (fake transaction hashes: the query never reaches the
chain for them), then times on anvil, alternated `--rounds` times: the pass's query alone, a
whole reconcile with nothing to book, and one that books one real direct payment. It says
whether running reconcile every few seconds inside `serve` would be cheap. Also the treasury
pass's lookup of a transfer's edge events: the first of a run reads every settled row's hash
(`EdgeSettlements`), the next ones are by id.

    python bench/bench_edge_direct.py [--events 0,10000,100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.eip3009 import Authorization, sign_authorization
from claw402.chain.wallet import Wallet
from claw402.events.store import EDGE, EdgeSettlements, EventStore
from claw402.ledger import accounts
from claw402.ledger.book import credit, debit, post
from claw402.ledger.chain import TokenChain
from claw402.ledger.edge_direct import unbooked_events
from claw402.ledger.reconcile import reconcile
from claw402.ledger.settlements import SETTLEMENT_DIRECT
from claw402.registry.db import make_engine, migrate
from claw402.registry.store import NewVersion, Registry, TenantSpec

PRICE = 10_000


def settled(tenant_id: str, tx_hash: str, payer: str, nonce: str, pay_to: str, network: str):
    return {
        "type": "payment_settled",
        "ts": time.time(),
        "requestId": "req-" + tx_hash[2:18],
        "tenantId": tenant_id,
        "source": EDGE,
        "details": {"transaction": tx_hash, "network": network, "payer": payer, "nonce": nonce,
                    "amount": str(PRICE), "payTo": pay_to},
    }  # fmt: skip


def seed(engine, tenant_id: str, creator: str, network: str, count: int) -> list[str]:
    """`count` direct edge settlements, their events and their bookings; their tx hashes."""
    batch = []
    with engine.begin() as conn:
        for _ in range(count):
            tx, nonce = "0x" + os.urandom(32).hex(), "0x" + os.urandom(32).hex()
            batch.append(settled(tenant_id, tx, "0x" + "11" * 20, nonce, creator, network))
            post(conn, key=f"settlement:{network}:seed:{nonce}", kind=SETTLEMENT_DIRECT,
                 entries=[debit(accounts.fees_due(tenant_id), 500),
                          credit(accounts.fees(tenant_id), 500)],
                 tenant_id=tenant_id, network=network, tx_hash=tx, gross=PRICE)  # fmt: skip
    for start in range(0, len(batch), 5000):
        EventStore(engine).write_events(batch[start : start + 5000])
    return [event["details"]["transaction"] for event in batch]


def lookups(engine, hashes: list[str]) -> tuple[float, float]:
    """The treasury pass's edge lookups (`EdgeSettlements`, one a transfer): the first of a
    run (it reads every settled row's hash) and the median of 100 after it."""
    settlements = EdgeSettlements()
    picked = [hashes[i * len(hashes) // 100] for i in range(100)] if hashes else ["0x00"] * 100
    with engine.connect() as conn:
        first = timed(lambda: settlements.of(conn, picked[0]))
        rest = [timed(lambda h=h: settlements.of(conn, h)) for h in picked[1:]]
    return first, statistics.median(rest)


def pay(chain: DevChain, to: str) -> tuple[str, str, str]:
    payer = Wallet.create()
    chain.fund(payer.address, PRICE)
    auth = Authorization(payer.address, to, PRICE, 0, int(time.time()) + 3600, os.urandom(32))
    signature = sign_authorization(payer.private_key, auth, chain.token_contract().domain())
    receipt = chain.token_contract().transfer_with_authorization(
        chain.facilitator.account, auth, signature
    )
    return payer.address, "0x" + auth.nonce.hex(), "0x" + bytes(receipt["transactionHash"]).hex()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(engine, tokens: TokenChain, chain: DevChain, tenant_id: str, creator: str,
            rounds: int) -> tuple[list[float], list[float], list[float]]:  # fmt: skip
    """Alternated: the pass's query, an idle reconcile, a reconcile booking one payment."""
    treasury = chain.treasury.address
    query, idle, booking = [], [], []
    reports: list = []
    for _ in range(rounds):
        with engine.connect() as conn:
            query.append(timed(lambda: unbooked_events(conn, treasury)))
        idle.append(timed(lambda: reconcile(engine, tokens, treasury, grace_seconds=0)))
        payer, nonce, tx = pay(chain, creator)
        EventStore(engine).write_events(
            [settled(tenant_id, tx, payer, nonce, creator, chain.network)]
        )
        booking.append(
            timed(lambda: reports.append(reconcile(engine, tokens, treasury, grace_seconds=0)))
        )
        assert reports[-1].edge_direct == 1, reports[-1]
    return query, idle, booking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="0,10000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with start_dev_chain(payers=1) as chain, tempfile.TemporaryDirectory() as tmp:
        tokens = TokenChain(chain.web3(), chain.token)
        treasury = chain.treasury.address
        for count in (int(n) for n in args.events.split(",")):
            engine = make_engine(f"sqlite:///{Path(tmp) / f'r{count}.sqlite3'}")
            migrate(engine)
            creator = Wallet.create().address
            version = NewVersion(source_path="/s.csv", format="csv", rows=1, bytes=1,
                                 columns=[{"name": "id", "type": "integer"}], key="id",
                                 data_path="/d.duckdb")  # fmt: skip
            spec = TenantSpec(slug="acme", worker_name="tenant-acme-worker", plan="free",
                              price_atomic=PRICE, pay_to=creator)  # fmt: skip
            tenant_id = Registry(engine).deploy(spec, version).tenant_id
            hashes = seed(engine, tenant_id, creator, chain.network, count)
            first, each = lookups(engine, hashes)
            reconcile(engine, tokens, treasury, grace_seconds=0)  # the first run's opening
            query, idle, booking = measure(engine, tokens, chain, tenant_id, creator, args.rounds)
            print(
                f"events={count:>7}  query {statistics.median(query):7.1f} ms  "
                f"idle reconcile {statistics.median(idle):7.1f} ms  "
                f"reconcile booking one {statistics.median(booking):7.1f} ms  "
                f"edge lookups: a run's first {first:7.1f} ms, then {each:5.2f} ms each  "
                f"(medians of {args.rounds}; load {os.getloadavg()[0]:.1f})"
            )
            engine.dispose()


if __name__ == "__main__":
    main()
