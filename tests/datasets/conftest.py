"""Tiny real fixtures: files written in tmp_path, ingested for real, queried for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claw402.datasets.engine import Engine
from claw402.datasets.ingest import IngestResult, ingest


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(cache_rows=0)
    yield eng
    eng.close()


@pytest.fixture
def cities(tmp_path: Path) -> IngestResult:
    source = tmp_path / "cities.csv"
    source.write_text(
        "id,city,country,population,area,capital,founded,updated\n"
        "1,Lisbon,Portugal,545000,100.05,true,1147-10-25,2024-01-02T10:00:00\n"
        "2,Porto,Portugal,232000,41.42,false,,2024-01-03T11:30:00.250000\n"
        "3,Madrid,Spain,3223000,604.3,true,0852-01-01,\n"
        "4,Sevilla,Spain,684000,140.8,false,0712-06-01,2023-12-31T23:59:59\n"
        "5,Paris,France,2161000,105.4,true,,2024-02-29T00:00:00\n"
        "6,Lyon,France,,47.87,false,,2024-01-01T00:00:00\n"
        "7,=cmd,Nowhere,-5,,,,\n"
    )
    return ingest(source, tmp_path / "v1", key="id")
