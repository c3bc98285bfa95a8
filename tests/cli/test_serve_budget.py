"""`serve --memory-limit/--open-datasets/--page-cache`: refused before anything starts when
they make no sense; otherwise handed to the workers through the environment (datasets/budget.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from claw402.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("CLAW402_MEMORY_LIMIT", "CLAW402_OPEN_DATASETS", "CLAW402_PAGE_CACHE"):
        monkeypatch.setenv(name, "")  # restored after the test, whatever serve sets
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "lots"], "invalid size 'lots'"),
        (["--memory-limit", "10MB"], "below 64MB"),
        (["--open-datasets", "0"], "must be a positive integer"),
        (["--page-cache", "plenty"], "invalid size 'plenty'"),
    ],
)
def test_a_bad_budget_is_refused_before_serving(tmp_path, args, message):
    result = runner.invoke(app, ["serve", "--home", str(tmp_path), "--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "registry.sqlite3").exists()  # nothing opened, nothing created


def test_the_page_cache_size_reaches_the_workers_environment():
    import os

    from claw402.cli.serve import _engine_budget
    from claw402.datasets.budget import Budget

    _engine_budget(None, None, "8MB")
    assert os.environ["CLAW402_PAGE_CACHE"] == "8MB"
    assert Budget.from_env().cache_bytes == "8MB"
