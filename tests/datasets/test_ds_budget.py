"""The engine's budget: read from the environment, refused when it makes no sense, honoured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claw402.datasets.budget import Budget, parse_size
from claw402.datasets.engine import Engine
from claw402.datasets.query import parse_query


def test_sizes_in_decimal_and_binary_units():
    assert parse_size("256MB") == 256_000_000
    assert parse_size("1.5 GB") == 1_500_000_000
    assert parse_size("512MiB") == 512 * 2**20
    for bad in ("", "lots", "12 parsecs", "-1GB"):
        with pytest.raises(ValueError, match="invalid size"):
            parse_size(bad)


def test_budget_from_the_environment():
    assert Budget.from_env({}) == Budget()
    budget = Budget.from_env(
        {
            "CLAW402_MEMORY_LIMIT": "300MB",
            "CLAW402_OPEN_DATASETS": "7",
            "CLAW402_ENGINE_THREADS": "1",
            "CLAW402_PAGE_CACHE_ROWS": "0",
        }
    )
    assert (budget.memory_limit, budget.max_open, budget.threads, budget.cache_rows) == (
        "300MB",
        7,
        1,
        0,
    )
    with pytest.raises(ValueError, match="CLAW402_OPEN_DATASETS must be a positive integer"):
        Budget.from_env({"CLAW402_OPEN_DATASETS": "0"})
    with pytest.raises(ValueError, match="below 64MB"):
        Budget.from_env({"CLAW402_MEMORY_LIMIT": "10MB"})
    with pytest.raises(ValueError, match="invalid size"):
        Budget.from_env({"CLAW402_MEMORY_LIMIT": "much"})


def test_the_engine_honours_its_budget(tmp_path):
    spill = tmp_path / "spill"
    engine = Engine(memory_limit="100MB", threads=1, temp_directory=str(spill))
    try:
        settings = dict(
            engine._con.execute(
                "SELECT name, value FROM duckdb_settings() "
                "WHERE name IN ('memory_limit', 'threads', 'temp_directory')"
            ).fetchall()
        )
        assert settings["threads"] == "1"
        assert settings["temp_directory"] == str(spill)
        assert settings["memory_limit"].startswith(("95.3", "100.0"))  # MiB or MB as DuckDB prints
    finally:
        engine.close()
    private = Engine()
    folder = private._temp
    assert not os.path.exists(folder)  # made by DuckDB only when it spills
    os.makedirs(folder)
    (Path(folder) / "spilled.block").write_bytes(b"x")
    private.close()
    assert not os.path.exists(folder)  # its own spill folder goes with it


def test_compact_versions_are_loaded_on_attach_and_dropped_by_the_lru(tmp_path, cities):
    assert cities.path.suffix == ".parquet"
    engine = Engine(max_open=1, cache_rows=0)
    try:
        ds = engine.open(cities.path, cities.columns, key="id")
        query = parse_query([("country", "Spain")], cities.columns, max_limit=10)
        first = ds.records(query)
        assert [r["city"] for r in first.items] == ["Madrid", "Sevilla"]
        other = engine.open(tmp_path / "missing" / "data.parquet", cities.columns)
        with pytest.raises(FileNotFoundError, match="missing"):
            other.records(query)
        assert engine.attached == 1 and ds.record("4")["city"] == "Sevilla"
        assert ds.records(query) == first
    finally:
        engine.close()
