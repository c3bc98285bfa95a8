"""Fixtures every suite shares: registry URLs for both backends, a migrated engine on each,
one dev chain per xdist worker, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from procs import RUN_MARKER, wait_for_no_leftovers

POSTGRES_URL = os.environ.get("CLAW402_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


# Every process this test process starts inherits it: what is still alive at the end leaked.
os.environ[RUN_MARKER] = uuid.uuid4().hex


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    """Fail the run if a 402claw, anvil or workerd process it started outlives it (set up
    first, so torn down after every other session fixture)."""
    yield
    leaked = wait_for_no_leftovers(os.environ[RUN_MARKER])
    assert not leaked, "processes the tests started are still running:\n" + "\n".join(leaked)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_reachable() -> str | None:
    from claw402.registry.db import make_engine

    try:
        engine = make_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} not reachable ({type(exc).__name__}); skipped"
    return None


@pytest.fixture(scope="session")
def postgres_skip_reason() -> str | None:
    return _postgres_reachable()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path, postgres_skip_reason) -> Iterator[str]:
    """A fresh, empty registry database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
        return
    if postgres_skip_reason:
        pytest.skip(postgres_skip_reason)
    from claw402.registry.db import make_engine

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated registry database (every table, every layer) on the parameterised backend."""
    from claw402.registry.db import make_engine, migrate

    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def chain() -> Iterator[object]:
    """anvil with the token deployed and one funded payer, shared by a worker's tests."""
    from claw402.chain.devchain import start_dev_chain

    with start_dev_chain(payers=1) as dev_chain:
        yield dev_chain


@pytest.fixture(autouse=True)
def _default_fee(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fees at the documented default unless a test sets CLAW402_FEE_BPS itself."""
    monkeypatch.delenv("CLAW402_FEE_BPS", raising=False)
