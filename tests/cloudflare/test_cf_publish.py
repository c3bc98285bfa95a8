"""`402claw deploy --publish`: the tenant Worker, then the dispatcher, through the real SDK."""

from __future__ import annotations

import json

from cfapi import FakeCloudflare
from typer.testing import CliRunner

from claw402.cli.main import app
from claw402.cloudflare.history import History
from claw402.samples import CITIES


def test_deploy_publish_dry_run_then_execute(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name in (
        "CLAW402_ENV",
        "CLAW402_NETWORK",
        "CLAW402_ASSET",
        "CLAW402_FACILITATOR_URL",
        "CLAW402_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    with FakeCloudflare() as fake:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "test-token")
        args = [
            "deploy",
            str(CITIES),
            "--tenant",
            "cities",
            "--price",
            "0",
            "--publish",
            "--account-id",
            "acc1",
            "--dispatch-namespace",
            "ns1",
            "--home",
            str(home),
            "--json",
        ]
        dry = runner.invoke(app, args)
        assert dry.exit_code == 0, dry.output
        out = json.loads(dry.stdout)
        assert out["tenant"]["slug"] == "cities" and out["publish"]["executed"] is False
        assert [s["kind"] for s in out["publish"]["steps"]] == ["tenant", "dispatcher"]
        assert fake.requests == []

        done = runner.invoke(app, [*args, "--execute"])
        assert done.exit_code == 0, done.output
        paths = [(r.method, r.path) for r in fake.requests]
        api = "/client/v4/accounts/acc1/workers"
        assert paths == [
            ("PUT", f"{api}/dispatch/namespaces/ns1/scripts/tenant-cities-worker"),
            ("GET", f"{api}/scripts"),  # the dispatcher's migration tag
            ("PUT", f"{api}/scripts/claw402-dispatcher"),
        ]
        tenant_upload = fake.requests[0]
        assert tenant_upload.metadata["main_module"] == "worker.js"
        assert tenant_upload.part("worker.js").content
        kinds = [e["kind"] for e in History(home).entries()]
        assert kinds == ["tenant", "dispatcher"]
