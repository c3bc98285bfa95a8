"""Channel updates per second through `SqlChannelStorage` on SQLite and PostgreSQL.

    python bench/bench_channel_store.py                       # both backends, 2 s per case
    python bench/bench_channel_store.py --backend sqlite --seconds 5
    python bench/bench_channel_store.py --postgres-url postgresql://127.0.0.1:5432/test

Each update is one `update_channel` whose callback adds a price to the charged amount (what a
voucher's settle does). Cases: one thread; 8 threads on one channel (every update contends:
compare-and-swap retries); 8 threads on 8 channels (one each). PostgreSQL runs in a throwaway
schema, SQLite in a temporary file; the registry's own engine settings are used.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from x402.mechanisms.evm.batch_settlement.server.storage import Channel
from x402.mechanisms.evm.batch_settlement.types import ChannelConfig
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id

from claw402.payments.channels.storage import SqlChannelStorage
from claw402.registry.db import make_engine, migrate

PRICE = 1_000


@contextmanager
def database(backend: str, postgres_url: str) -> Iterator[sa.Engine]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
            migrate(engine)
            yield engine
            engine.dispose()
        return
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    engine = make_engine(f"{postgres_url}{sep}options=-csearch_path%3D{schema}")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def make_channels(storage: SqlChannelStorage, count: int) -> list[str]:
    ids = []
    for salt in range(count):
        config = ChannelConfig(
            payer="0x" + "ab" * 20,
            payer_authorizer="0x" + "ab" * 20,
            receiver="0x" + "cd" * 20,
            receiver_authorizer="0x" + "ef" * 20,
            token="0x" + "12" * 20,
            withdraw_delay=900,
            salt=f"0x{salt:064x}",
        )
        channel = Channel(compute_channel_id(config, "eip155:8453"), config, balance=str(10**15))
        storage.update_channel(channel.channel_id, lambda _, c=channel: c)
        ids.append(channel.channel_id)
    return ids


def charge(current: Channel | None) -> Channel | None:
    assert current is not None
    nxt = current.copy()
    nxt.charged_cumulative_amount = str(int(current.charged_cumulative_amount) + PRICE)
    nxt.signed_max_claimable = nxt.charged_cumulative_amount
    return nxt


def run_case(engine: sa.Engine, threads: int, channels: int, seconds: float) -> tuple[float, int]:
    """Updates per second and lost compare-and-swaps with `threads` over `channels`."""
    storage = SqlChannelStorage(engine, max_attempts=100_000)
    ids = make_channels(storage, channels)
    before = sum(int(storage.get(i).charged_cumulative_amount) for i in ids)
    counts = [0] * threads
    stop = time.perf_counter() + seconds
    start = threading.Barrier(threads + 1)

    def work(slot: int) -> None:
        channel_id = ids[slot % channels]
        start.wait()
        while time.perf_counter() < stop:
            storage.update_channel(channel_id, charge)
            counts[slot] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    start.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    after = sum(int(storage.get(i).charged_cumulative_amount) for i in ids)
    assert after - before == sum(counts) * PRICE, "an update was lost"
    # the channels stay for the next case: clear them so each case starts alike
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM payment_channels"))
    return sum(counts) / elapsed, storage.lost_races


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=2.0, help="per case")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    cases = [
        ("1 thread, 1 channel", 1, 1),
        ("8 threads, 1 channel", 8, 1),
        ("8 threads, 8 channels", 8, 8),
    ]
    print(f"{'backend':<11} {'case':<24} {'updates/s':>10} {'lost CAS':>9}")
    for backend in backends:
        with database(backend, args.postgres_url) as engine:
            for name, threads, channels in cases:
                rate, lost = run_case(engine, threads, channels, args.seconds)
                print(f"{backend:<11} {name:<24} {rate:>10.0f} {lost:>9}", flush=True)


if __name__ == "__main__":
    main()
