"""The paid-call stack, for real: anvil + ClawUSD, the facilitator over HTTP, and the gateway
with the paywall served by uvicorn. One stack per xdist worker (session scope).

Tenants: `alpha` ($0.01, paid to the treasury, also at host alpha.test), `beta` ($0.02,
paid to a creator), `gamma` (same price and payTo as alpha: only the tenant differs).
Each test pays from its own fresh wallet, so balance checks never see another test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paidstack import Stack, open_stack

from claw402.chain.wallet import Wallet


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(tmp_path_factory.mktemp("paid")) as opened:
        yield opened


@pytest.fixture
def payer(stack: Stack) -> Wallet:
    return stack.payer()


@pytest.fixture
def js_client() -> Callable[..., dict[str, Any]]:
    """Run the official JavaScript client (`@x402/fetch`) against a URL; returns its report."""
    script = Path(__file__).with_name("js") / "pay.mjs"

    def run(url: str, private_key: str, network: str, asset: str, max_atomic: int) -> dict:
        proc = subprocess.run(
            ["node", str(script), url, private_key, network, asset, str(max_atomic)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run
