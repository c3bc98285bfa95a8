"""The CLI with API keys: who may deploy, remove, withdraw, and what the audit log keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_control_operations import GATED_ACTIONS
from typer.testing import CliRunner

from claw402.chain.wallet import Wallet
from claw402.cli.main import app
from claw402.samples import CITIES

runner = CliRunner()


@pytest.fixture
def cli(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("CLAW402_DATABASE_URL", database_url)
    monkeypatch.delenv("CLAW402_API_KEY", raising=False)
    home = str(tmp_path / "home")

    def run(*args: str, ok: bool = True, key: str | None = None, env=None) -> dict:
        extra = ["--api-key", key] if key else []
        result = runner.invoke(app, [*args, *extra, "--home", home, "--json"], env=env)
        assert (result.exit_code == 0) is ok, result.output
        return json.loads(result.stdout)

    return run


def deploy(cli, slug: str, *more: str, **kw) -> dict:
    return cli("deploy", str(CITIES), "--tenant", slug, "--price", "0.01", *more, **kw)


def test_keys_gate_every_mutating_command(cli):
    deploy(cli, "legacy")  # before any key: open, owned by nobody
    cli("auth", "create-user", "root")
    admin = cli("auth", "create-key", "--user", "root", "--scope", "admin")["key"]
    assert admin.startswith("c402_")
    cli("auth", "create-user", "alice", key=admin)
    cli("auth", "create-user", "bob", key=admin)
    alice = cli("auth", "create-key", "--user", "alice", "--scope", "deploy,withdraw", key=admin)[
        "key"
    ]
    bob_read = cli("auth", "create-key", "--user", "bob", "--scope", "read", key=admin)["key"]
    bob = cli("auth", "create-key", "--user", "bob", "--scope", "deploy", key=admin)["key"]

    missing = deploy(cli, "acme", ok=False)
    assert missing["error"] == "api_key_required" and "--api-key" in missing["detail"]
    scope = deploy(cli, "acme", ok=False, key=bob_read)
    assert scope["error"] == "missing_scope" and "lacks the 'deploy' scope" in scope["detail"]
    assert cli("auth", "create-user", "eve", ok=False, key=alice)["error"] == "missing_scope"

    tenant = deploy(cli, "acme", env={"CLAW402_API_KEY": alice})["tenant"]  # env works too
    assert tenant["owner"] == "alice"
    theft = deploy(cli, "acme", ok=False, key=bob)
    assert theft["error"] == "not_tenant_owner" and "owned by 'alice'" in theft["detail"]
    assert cli("remove", "acme", ok=False, key=bob)["error"] == "not_tenant_owner"
    assert deploy(cli, "legacy", ok=False, key=alice)["error"] == "not_tenant_owner"
    deploy(cli, "acme", "--plan", "pro", "--price", "0.02", key=alice)
    assert cli("balance", "--tenant", "acme", ok=False, key=bob)["error"] == "not_tenant_owner"
    assert cli("balance", "--tenant", "acme", key=alice)["balance"]["available"] == "0"

    wallet = Wallet.create()
    no_wallet = cli("withdraw", "--tenant", "acme", "--amount", "1", ok=False, key=alice)
    assert no_wallet["error"] == "no_wallet"
    challenge = cli("wallet", "verify", "--tenant", "acme", "--address", wallet.address, key=alice)[
        "challenge"
    ]
    assert wallet.address in challenge
    cli(
        "wallet",
        "verify",
        "--tenant",
        "acme",
        "--address",
        wallet.address,
        "--private-key-env",
        "CREATOR_KEY",
        key=alice,
        env={"CREATOR_KEY": wallet.private_key},
    )
    short = cli("withdraw", "--tenant", "acme", "--amount", "1", ok=False, key=alice)
    assert short["error"] == "insufficient_funds"
    assert cli("payouts", "run", "--dry-run", ok=False, key=alice)["error"] == "missing_scope"

    rotated = cli("auth", "rotate-key", alice[:17], key=alice)["key"]
    assert deploy(cli, "acme", ok=False, key=alice)["error"] == "key_revoked"
    cli("remove", "acme", key=rotated)

    actions = [e["action"] for e in cli("audit", "list", "--limit", "100", key=admin)["entries"]]
    assert actions == GATED_ACTIONS
    assert cli("audit", "list", ok=False, key=rotated)["error"] == "missing_scope"
    verified = cli("audit", "verify", key=bob_read)
    assert verified["ok"] and verified["entries"] == len(actions)


def serve_calls(database_url: str, home: str, paths: list[str]) -> None:
    """Real calls through a real gateway: the events `402claw events` reads back."""
    import httpx

    from claw402.config import Settings
    from claw402.events.sink import EventSink
    from claw402.gateway.app import Gateway
    from claw402.registry.store import Registry
    from claw402.serving import ServerThread

    registry = Registry.open(Settings(home=Path(home), database_url=database_url))
    try:
        gateway = Gateway(registry, sink=EventSink.in_process(registry.engine, interval=0.02))
        with ServerThread(gateway) as server:  # stopping it flushes the sink
            for path in paths:
                httpx.get(f"{server.url}{path}", timeout=10)
    finally:
        registry.close()


def test_read_commands_need_a_key_and_show_only_the_keys_tenants(cli, tmp_path, database_url):
    deploy(cli, "legacy", "--price", "0")  # before any key: open, owned by nobody
    cli("auth", "create-user", "root")
    admin = cli("auth", "create-key", "--user", "root", "--scope", "admin")["key"]
    for user in ("alice", "bob"):
        cli("auth", "create-user", user, key=admin)
    alice = cli("auth", "create-key", "--user", "alice", "--scope", "deploy", key=admin)["key"]
    bob = cli("auth", "create-key", "--user", "bob", "--scope", "deploy", key=admin)["key"]
    bob_read = cli("auth", "create-key", "--user", "bob", "--scope", "read", key=admin)["key"]
    deploy(cli, "acme", "--price", "0", key=alice)
    deploy(cli, "bobco", "--price", "0", key=bob)
    serve_calls(
        database_url,
        str(tmp_path / "home"),
        ["/t/acme/v1/records", "/t/bobco/v1/records", "/t/legacy/v1/records", "/t/nobody/x"],
    )

    for args in (["list"], ["show", "acme"], ["events"], ["events", "--tenant", "acme"]):
        refused = cli(*args, ok=False)
        assert refused["error"] == "api_key_required", args
        assert "--api-key" in refused["detail"] and "'read' scope" in refused["detail"]

    def slugs(key: str) -> list[str]:
        return sorted(t["slug"] for t in cli("list", key=key)["tenants"])

    assert slugs(alice) == ["acme"] and slugs(bob_read) == ["bobco"]
    assert slugs(admin) == ["acme", "bobco", "legacy"]
    assert cli("show", "acme", key=alice)["tenant"]["owner"] == "alice"
    assert cli("show", "acme", ok=False, key=bob_read)["error"] == "not_tenant_owner"
    assert cli("show", "legacy", ok=False, key=alice)["error"] == "not_tenant_owner"
    assert cli("show", "legacy", key=admin)["tenant"]["slug"] == "legacy"

    ids = {t["slug"]: t["tenantId"] for t in cli("list", key=admin)["tenants"]}

    def tenants_in(events: list[dict]) -> set[str | None]:
        return {e.get("tenantId") for e in events}

    everything = cli("events", "--limit", "1000", key=admin)["events"]
    assert tenants_in(everything) == {ids["acme"], ids["bobco"], ids["legacy"], None}
    assert tenants_in(cli("events", key=alice)["events"]) == {ids["acme"]}
    bobs = cli("events", env={"CLAW402_API_KEY": bob_read})["events"]  # the variable works too
    assert tenants_in(bobs) == {ids["bobco"]}
    assert cli("events", "--tenant", "acme", ok=False, key=bob)["error"] == "not_tenant_owner"
    assert tenants_in(cli("events", "--tenant", "acme", key=alice)["events"]) == {ids["acme"]}
    newest = cli("events", "--limit", "1", key=alice)["events"]
    assert newest == cli("events", "--tenant", "acme", "--limit", "1", key=alice)["events"]
    # --limit counts requests: one whole trail (start and end), never half of one
    assert len({e["requestId"] for e in newest}) == 1
    assert newest[0]["type"] == "dispatch_start" and len(newest) >= 2
