"""One dev chain per test session (so one per pytest-xdist worker): starting one takes ~0.2 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from claw402.chain.devchain import DevChain, start_dev_chain


@pytest.fixture(scope="session")
def chain() -> Iterator[DevChain]:
    with start_dev_chain(payers=4) as dev_chain:
        yield dev_chain
