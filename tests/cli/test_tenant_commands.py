"""The CLI as a creator uses it: deploy, list, show, remove, events; bad input changes nothing."""

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
    return str(tmp_path / "home")


def run(*args: str, ok: bool = True) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert (result.exit_code == 0) is ok, result.output
    return json.loads(result.stdout)


def test_deploy_list_show_remove(home):
    out = run(
        "deploy",
        str(CITIES),
        "--tenant",
        "acme",
        "--price",
        "0.001",
        "--home",
        home,
        "--host",
        "Data.Acme.com",
        "--key",
        "id",
        "--plan",
        "pro",
        "--cpu-ms",
        "300",
    )
    tenant = out["tenant"]
    assert tenant["slug"] == "acme" and tenant["workerName"] == "tenant-acme-worker"
    assert tenant["priceAtomic"] == "1000" and tenant["price"] == "0.001"
    assert tenant["hosts"] == ["data.acme.com"]
    assert tenant["limits"] == {"cpuMs": 300, "subRequests": 50, "cpu_ms": 300, "subrequests": 50}
    assert tenant["dataset"]["rows"] == 50 and tenant["dataset"]["key"] == "id"
    assert tenant["dataset"]["type"] == "csv" and tenant["dataset"]["version"] == 1

    # A re-deploy keeps what it does not name and makes a new version.
    again = run("deploy", str(CITIES), "--tenant", "acme", "--home", home)["tenant"]
    assert again["dataset"]["version"] == 2 and again["hosts"] == ["data.acme.com"]
    assert again["plan"] == "pro" and again["price"] == "0.001"

    listed = run("list", "--home", home)["tenants"]
    assert [t["slug"] for t in listed] == ["acme"]
    assert run("show", "acme", "--home", home)["tenant"]["tenantId"] == tenant["tenantId"]
    assert run("remove", "acme", "--home", home)["removed"] == "acme"
    assert run("list", "--home", home)["tenants"] == []
    assert run("show", "acme", "--home", home, ok=False)["error"] == "tenant_not_found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "../x", "--price", "0.001"], "invalid slug"),
        (["--tenant", "Acme", "--price", "0.001"], "invalid slug"),
        (["--tenant", "admin", "--price", "0.001"], "reserved"),
        (["--tenant", "ok", "--price", "-1"], "price"),
        (["--tenant", "ok", "--price", "0.0000001"], "decimals"),
        (["--tenant", "ok"], "--price is required"),
        (["--tenant", "ok", "--price", "1", "--plan", "gold"], "unknown plan"),
        (["--tenant", "ok", "--price", "1", "--host", "a.com:80"], "port"),
        (["--tenant", "ok", "--price", "1", "--pay-to", "0x123"], "invalid address"),
        (["--tenant", "ok", "--price", "1", "--cpu-ms", "0"], "positive"),
        (["--tenant", "ok", "--price", "1", "--key", "nope"], "nope"),
        (["--tenant", "ok", "--price", "1", "--schemes", "lightning"], "--schemes"),
        (["--tenant", "ok", "--price", "1", "--price-per-1k-rows", "0.01"], "cannot be combined"),
        (["--tenant", "ok", "--price-per-1k-rows", "0"], "must be positive"),
        (["--tenant", "ok", "--price-per-1k-rows", "-1"], "non-negative"),
        (["--tenant", "ok", "--price-per-1k-rows", "0.0000001"], "decimals"),
        (["--tenant", "ok", "--price-per-1k-rows", "100.01"], "maximum"),
        (["--tenant", "ok", "--price-per-1k-rows", "ten"], "not a number"),
    ],
)
def test_bad_deploys_change_nothing(home, args, message):
    out = run("deploy", str(CITIES), *args, "--home", home, ok=False)
    assert out["ok"] is False and message in out["detail"]
    assert run("list", "--home", home)["tenants"] == []


def test_broken_file_keeps_the_previous_version(home, tmp_path):
    run("deploy", str(CITIES), "--tenant", "acme", "--price", "0", "--home", home)
    broken = tmp_path / "broken.csv"
    broken.write_text('id,name\n1,"ok"\n2,"unterminated\n3,x,y,z\n')
    out = run("deploy", str(broken), "--tenant", "acme", "--home", home, ok=False)
    assert out["error"] == "deploy_failed" and out["detail"]
    shown = run("show", "acme", "--home", home)["tenant"]
    assert shown["dataset"]["version"] == 1 and shown["dataset"]["rows"] == 50
    missing = run(
        "deploy",
        str(tmp_path / "nope.csv"),
        "--tenant",
        "x",
        "--price",
        "0",
        "--home",
        home,
        ok=False,
    )
    assert "no such file" in missing["detail"]


def test_hosts_are_unique_across_tenants(home):
    run(
        "deploy",
        str(CITIES),
        "--tenant",
        "a",
        "--price",
        "0",
        "--host",
        "x.example.com",
        "--home",
        home,
    )
    out = run(
        "deploy",
        str(CITIES),
        "--tenant",
        "b",
        "--price",
        "0",
        "--host",
        "x.example.com",
        "--home",
        home,
        ok=False,
    )
    assert "already belongs to tenant 'a'" in out["detail"]
    assert [t["slug"] for t in run("list", "--home", home)["tenants"]] == ["a"]


def test_home_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAW402_HOME", str(tmp_path / "envhome"))
    monkeypatch.delenv("CLAW402_DATABASE_URL", raising=False)
    run("deploy", str(CITIES), "--tenant", "acme", "--price", "0")
    assert (tmp_path / "envhome" / "registry.sqlite3").exists()
    assert any((tmp_path / "envhome" / "datasets" / "acme").iterdir())


def test_human_output_is_readable(home):
    result = runner.invoke(
        app, ["deploy", str(CITIES), "--tenant", "acme", "--price", "0.002", "--home", home]
    )
    assert result.exit_code == 0
    assert "deployed acme v1: 50 rows" in result.stdout and "$0.002 per call" in result.stdout
    listed = runner.invoke(app, ["list", "--home", home])
    assert "acme" in listed.stdout and "$0.002" in listed.stdout
    bad = runner.invoke(
        app, ["deploy", str(CITIES), "--tenant", "../x", "--price", "0", "--home", home]
    )
    assert bad.exit_code == 1 and "invalid slug" in bad.stderr


def files_under(home: str) -> list[str]:
    from pathlib import Path

    datasets = Path(home) / "datasets"
    return sorted(str(p) for p in datasets.rglob("*")) if datasets.exists() else []


def test_prose_and_empty_files_are_refused_unless_said(home, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Remember to buy milk and call the bank on Monday.\n")
    deploy = ["deploy", str(notes), "--tenant", "notes", "--price", "0.001", "--home", home]
    unknown = runner.invoke(app, deploy)
    said = " ".join(unknown.stderr.split())  # as one line, however Rich wrapped it
    assert unknown.exit_code == 1 and "'.txt' names none of the formats" in said
    assert "--format csv|json|ndjson|parquet" in said
    assert run("list", "--home", home)["tenants"] == [] and files_under(home) == []

    empty = run(*deploy, "--format", "csv", ok=False)  # one line of prose: a header, no rows
    assert empty["error"] == "deploy_failed" and "--allow-empty" in empty["detail"]
    assert run("list", "--home", home)["tenants"] == [] and files_under(home) == []
    bad = runner.invoke(app, [*deploy, "--format", "xml"])
    assert bad.exit_code == 2 and "xml" in bad.output

    allowed = run(*deploy, "--format", "csv", "--allow-empty")["tenant"]
    assert allowed["dataset"]["rows"] == 0 and allowed["dataset"]["type"] == "csv"

    # A re-deploy to nothing is refused too, and the live version stays.
    run("deploy", str(CITIES), "--tenant", "acme", "--price", "0", "--home", home)
    header = tmp_path / "header.csv"
    header.write_text("id,city\n")
    out = run("deploy", str(header), "--tenant", "acme", "--home", home, ok=False)
    assert "--allow-empty" in out["detail"]
    shown = run("show", "acme", "--home", home)["tenant"]
    assert shown["dataset"]["version"] == 1 and shown["dataset"]["rows"] == 50


def test_schemes_are_stored_and_kept_by_a_redeploy(home):
    first = run("deploy", str(CITIES), "--tenant", "acme", "--price", "0.001", "--home", home)
    assert first["tenant"]["schemes"] == "both"
    deploy = ("deploy", str(CITIES), "--tenant", "acme", "--home", home)
    assert run(*deploy, "--schemes", "batch")["tenant"]["schemes"] == "batch"
    assert run(*deploy)["tenant"]["schemes"] == "batch"
    assert run(*deploy, "--schemes", "exact")["tenant"]["schemes"] == "exact"


def test_pricing_by_rows_is_stored_shown_and_switched(home):
    deploy = ("deploy", str(CITIES), "--tenant", "acme", "--home", home)
    first = run(*deploy, "--price-per-1k-rows", "0.05", "--plan", "pro")["tenant"]
    # A pro page is 1,000 rows: a call is advertised at a full page, $0.05.
    assert (first["pricePer1kRows"], first["pricePer1kRowsAtomic"]) == ("0.05", "50000")
    assert (first["price"], first["priceAtomic"]) == ("0.05", "50000")
    assert run("show", "acme", "--home", home)["tenant"]["pricePer1kRows"] == "0.05"
    (listed,) = run("list", "--home", home)["tenants"]
    assert listed["pricePer1kRows"] == "0.05"
    # A re-deploy that names no price keeps it; the plan's page cap moves the maximum.
    kept = run(*deploy, "--plan", "free")["tenant"]
    assert (kept["pricePer1kRows"], kept["priceAtomic"]) == ("0.05", "5000")
    # A bad rate changes nothing.
    assert run(*deploy, "--price-per-1k-rows", "0", ok=False)["error"] == "deploy_failed"
    assert run("show", "acme", "--home", home)["tenant"]["dataset"]["version"] == 2
    # --price switches to a price per call, and back.
    flat = run(*deploy, "--price", "0.002")["tenant"]
    assert (flat["pricePer1kRows"], flat["priceAtomic"]) == (None, "2000")
    back = run(*deploy, "--price-per-1k-rows", "0.01")["tenant"]
    assert (back["pricePer1kRows"], back["priceAtomic"]) == ("0.01", "1000")
    human = runner.invoke(app, ["list", "--home", home], env={"COLUMNS": "200"})
    assert "$0.01 per 1k rows (at most $0.001 a call)" in human.stdout
