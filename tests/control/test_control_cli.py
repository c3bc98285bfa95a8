"""The CLI with API keys: who may deploy, remove, withdraw, and what the audit log keeps."""

from __future__ import annotations

import json

import pytest
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
    assert actions == [
        "tenant.deployed",  # legacy, by local
        "user.created",
        "key.created",
        "user.created",
        "user.created",
        "key.created",
        "key.created",
        "key.created",
        "tenant.deployed",  # acme by alice
        "tenant.deployed",
        "tenant.plan_changed",
        "tenant.price_changed",
        "wallet.verified",
        "key.rotated",
        "tenant.removed",
    ]
    assert cli("audit", "list", ok=False, key=rotated)["error"] == "missing_scope"
    verified = cli("audit", "verify", key=bob_read)
    assert verified["ok"] and verified["entries"] == len(actions)
