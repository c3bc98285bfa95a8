"""The limits from the command line: `deploy --rate/--quota-day/--quota-month/--spend-cap-day`
and `quarantine`/`unquarantine`; a limit that cannot be enforced changes nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from claw402.cli.main import app
from claw402.samples import CITIES

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("CLAW402_DATABASE_URL", raising=False)
    monkeypatch.delenv("CLAW402_API_KEY", raising=False)
    return str(tmp_path / "home")


def run(*args: str, ok: bool = True) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert (result.exit_code == 0) is ok, result.output
    return json.loads(result.stdout)


def test_deploy_limits_and_quarantine(home):
    out = run("deploy", str(CITIES), "--tenant", "acme", "--price", "0.01", "--plan", "pro",
              "--rate", "20/s", "--quota-day", "1000", "--quota-month", "20000",
              "--spend-cap-day", "5", "--home", home)  # fmt: skip
    assert out["tenant"]["controls"] == {"rate": "20/s", "quotaDay": 1000, "quotaMonth": 20000,
                                         "spendCapDay": "5", "quarantinedFrom": None}  # fmt: skip
    bad = run("deploy", str(CITIES), "--tenant", "acme", "--rate", "lots", "--home", home, ok=False)
    assert bad["error"] == "deploy_failed" and "--rate must look like 10/s" in bad["detail"]
    shown = run("show", "acme", "--home", home)["tenant"]
    assert shown["dataset"]["version"] == 1 and shown["controls"]["rate"] == "20/s"

    done = run("quarantine", "acme", "--home", home)
    assert done["changed"] and done["tenant"]["plan"] == "quarantine"
    assert done["tenant"]["controls"]["quarantinedFrom"] == "pro"
    assert not run("quarantine", "acme", "--home", home)["changed"]
    back = run("unquarantine", "acme", "--home", home)
    assert back["changed"] and back["tenant"]["plan"] == "pro"
    missing = run("quarantine", "nobody", "--home", home, ok=False)
    assert "nobody" in json.dumps(missing)
