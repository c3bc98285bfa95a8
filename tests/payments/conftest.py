"""The paid-call stack, for real: anvil + ClawUSD, the facilitator over HTTP, and the gateway
with the paywall served by uvicorn. One stack per xdist worker (session scope).

Tenants: `alpha` ($0.01, paid to the treasury, also at host alpha.test), `beta` ($0.02,
paid to a creator), `gamma` (same price and payTo as alpha: only the tenant differs).
Each test pays from its own fresh wallet, so balance checks never see another test.
"""

from __future__ import annotations

from collections.abc import Iterator

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
