"""An event store on a migrated database of each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from claw402.events.store import EventStore


@pytest.fixture
def store(engine: Engine) -> Iterator[EventStore]:
    yield EventStore(engine)
