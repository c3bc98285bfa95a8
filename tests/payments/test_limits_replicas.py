"""Two `402claw serve` processes sharing one PostgreSQL schema and one Redis (a private
redis-server, since one test stops it), with the real chain and facilitator: the guarantees
of one gateway hold across both. Requests alternate or race between the replicas."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from paidstack import MAX_TIMEOUT, Stack, encode
from test_payments_serve import CLI, serve_env, served
from x402.http.utils import decode_payment_required_header

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.config import Settings
from claw402.registry.db import make_engine
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES
from procs import run
from redisproc import free_port, redis_server

POSTGRES_URL = os.environ.get("CLAW402_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
QUOTA = 3
_STATE = re.compile(r'^"rate";r=(\d+);t=(\d+)$')


@dataclass
class Replicas:
    urls: list[str]
    env: dict[str, str]
    registry: Registry
    redis_port: int
    redis_dir: Path
    stack: Stack
    exits: ExitStack

    def redis(self) -> AbstractContextManager[str]:
        return redis_server(self.redis_port, self.redis_dir)


@pytest.fixture(scope="module")
def replicas(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, postgres_skip_reason: str | None
) -> Iterator[Replicas]:
    if postgres_skip_reason:
        pytest.skip(postgres_skip_reason)
    admin = make_engine(POSTGRES_URL)
    schema = "t_" + uuid.uuid4().hex[:12]
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    home = tmp_path_factory.mktemp("replicas")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    settings = Settings(home=home, database_url=url)
    registry = Registry.open(settings)
    redis_port, redis_dir = free_port(), home / "redis"
    env = {**serve_env(stack), "CLAW402_DATABASE_URL": url, "CLAW402_HOME": str(home),
           "CLAW402_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "CLAW402_REDIS_PREFIX": f"{schema}:",
           "CLAW402_MAX_TIMEOUT_SECONDS": str(MAX_TIMEOUT)}  # fmt: skip
    for slug, extra in (("quota", {"quota_day": QUOTA}), ("twice", {}), ("held", {"quota_day": 1}),
                        ("open", {"price": "0", "rate": "4/h"})):  # fmt: skip
        request = {"source": CITIES, "slug": slug, "price": "0.01", "schemes": "exact", **extra}
        deploy(registry, settings, DeployRequest(**request))  # type: ignore[arg-type]
    try:
        with ExitStack() as exits:
            exits.enter_context(redis_server(redis_port, redis_dir))
            urls = [exits.enter_context(served(env))[0] for _ in range(2)]
            yield Replicas(urls, env, registry, redis_port, redis_dir, stack, exits)
    finally:
        registry.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_rate_limit_headers_are_right_at_the_boundary_across_replicas(replicas: Replicas) -> None:
    answers = [httpx.get(f"{replicas.urls[i % 2]}/t/open/v1/schema", timeout=10) for i in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert {a.headers["ratelimit-policy"] for a in answers} == {'"rate";q=4;w=3600'}
    states = [_STATE.fullmatch(a.headers["ratelimit"]) for a in answers]
    assert [int(m[1]) for m in states if m] == [3, 2, 1, 0, 0]
    assert answers[-1].headers["retry-after"] == states[-1][2]  # type: ignore[index]


def test_a_quota_of_n_allows_exactly_n_paid_calls(replicas: Replicas) -> None:
    stack = replicas.stack
    payer = stack.payer()
    before = stack.balance(payer.address)
    urls = [f"{replicas.urls[i % 2]}/t/quota/v1/records" for i in range(QUOTA + 2)]
    with ThreadPoolExecutor(QUOTA + 2) as pool:
        calls = list(pool.map(lambda u: stack.pay(u, payer, usdc("0.01")), urls))
    codes = sorted(c.response.status_code for c in calls)
    assert codes == [200] * QUOTA + [429] * 2, codes
    assert sum(c.paid for c in calls) == QUOTA
    assert before - stack.balance(payer.address) == QUOTA * usdc("0.01")


def test_one_payment_sent_to_both_at_once_is_honoured_once(replicas: Replicas) -> None:
    stack = replicas.stack
    payer = stack.payer()
    before = stack.balance(payer.address)
    header = _payment(replicas, payer)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda base: httpx.get(
            f"{base}/t/twice/v1/records", headers={"PAYMENT-SIGNATURE": header}, timeout=30),
            replicas.urls))  # fmt: skip
    codes = sorted(a.status_code for a in answers)
    assert codes[0] == 200 and codes[1] in (202, 409), [a.text[:300] for a in answers]
    assert before - stack.balance(payer.address) == usdc("0.01")


def test_a_quarantine_through_one_is_enforced_by_the_other_within_a_second(
    replicas: Replicas,
) -> None:
    other = replicas.urls[1]
    done = run([CLI, "quarantine", "open", "--json"], env=replicas.env)
    assert done.returncode == 0, done.stderr
    changed_at = time.monotonic()
    while True:
        policy = httpx.get(f"{other}/t/open/v1/schema", timeout=10).headers["ratelimit-policy"]
        if policy == '"rate";q=1;w=1':
            break
        assert time.monotonic() - changed_at < 1.0, "the other replica still serves the old plan"
        time.sleep(0.02)
    done = run([CLI, "unquarantine", "open", "--json"], env=replicas.env)
    assert done.returncode == 0, done.stderr


def test_redis_stopped_and_started_mid_run(replicas: Replicas) -> None:
    stack = replicas.stack
    a, b = replicas.urls
    payer = stack.payer()
    # A quota of one, used up before Redis stops (this test's own: xdist may run the module's
    # other tests on another worker, with another fixture).
    assert stack.pay(f"{a}/t/held/v1/records", payer, usdc("0.01")).paid
    before = stack.balance(payer.address)
    header = _payment(replicas, payer)  # signed while the 402 can still be read
    _stop_redis(replicas)
    paid = httpx.get(f"{a}/t/twice/v1/records", timeout=10)
    assert paid.status_code == 503 and paid.json()["error"] == "limits_unavailable"
    refused = httpx.get(f"{b}/t/twice/v1/records", headers={"PAYMENT-SIGNATURE": header},
                        timeout=10)  # fmt: skip
    assert refused.status_code == 503  # fails closed: nothing verified, nothing charged
    assert httpx.get(f"{b}/t/twice/v1/schema", timeout=10).status_code == 200  # free: works
    assert httpx.get(f"{a}/t/held/v1/records", timeout=10).status_code in (429, 503)
    with replicas.redis():
        deadline = time.monotonic() + 10
        for url in (a, b):
            while httpx.get(f"{url}/t/twice/v1/records", timeout=10).status_code != 402:
                assert time.monotonic() < deadline, f"{url} did not recover"
                time.sleep(0.05)
        # Each worker of a gateway retries Redis 0.5 s after its own last failure: a 503 with
        # Retry-After (nothing charged) may still come from one that has not, as a client would
        # see; it retries, as a client would.
        while True:
            again = httpx.get(f"{a}/t/twice/v1/records", headers={"PAYMENT-SIGNATURE": header},
                              timeout=30)  # fmt: skip
            if again.status_code != 503 or time.monotonic() > deadline:
                break
            assert again.json()["error"] == "limits_unavailable" and "retry-after" in again.headers
            time.sleep(0.1)
        assert again.status_code == 200  # the same payment, now honoured once
        assert before - stack.balance(payer.address) == usdc("0.01")
        # The quota (in the database) held through it all.
        over = stack.pay(f"{b}/t/held/v1/records", payer, usdc("0.01"))
        assert over.response.status_code == 429 and not over.paid


def _stop_redis(replicas: Replicas) -> None:
    """Stop the fixture's redis-server (SHUTDOWN NOSAVE; its process then exits, and the
    fixture's `running` reaps it)."""
    port = str(replicas.redis_port)
    run(["redis-cli", "-p", port, "shutdown", "nosave"])
    deadline = time.monotonic() + 5
    while run(["redis-cli", "-p", port, "ping"]).stdout.strip() == "PONG":
        assert time.monotonic() < deadline, "redis did not stop"
        time.sleep(0.05)


def _payment(replicas: Replicas, payer: Wallet) -> str:
    """A payment for `twice` on the replicas: the stack signs it (the stack's own `alpha` is
    only where it starts from) with every term of the replicas' own 402."""
    challenge = httpx.get(f"{replicas.urls[0]}/t/twice/v1/records", timeout=10)
    accepts = decode_payment_required_header(challenge.headers["payment-required"]).accepts
    exact = next(r for r in accepts if r.scheme == "exact").model_dump(by_alias=True)
    return encode(replicas.stack.sign(payer, "alpha", accepted=exact))
