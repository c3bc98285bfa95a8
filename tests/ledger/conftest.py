"""Ledger fixtures: a migrated database on each backend and one dev chain per xdist worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.registry.db import make_engine, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def chain() -> Iterator[DevChain]:
    with start_dev_chain(payers=1) as dev_chain:
        yield dev_chain


@pytest.fixture(autouse=True)
def _default_fee(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAW402_FEE_BPS", raising=False)
