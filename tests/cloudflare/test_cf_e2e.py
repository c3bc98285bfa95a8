"""End to end through the CLI: deploy -> export -> build -> workerd -> a paid call settled on
anvil by the project's facilitator, answered by the edge with the data and its receipt."""

from __future__ import annotations

import json

import httpx
from edgepay import MAX_TIMEOUT, EdgeClient
from typer.testing import CliRunner
from x402.http.utils import decode_payment_response_header

from claw402.chain.devchain import start_dev_chain
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.cli.main import app
from claw402.cloudflare.bundle import read_bundle
from claw402.cloudflare.workerd import LocalEdge
from claw402.facilitator.server import background_server
from claw402.facilitator.settings import FacilitatorSettings
from claw402.samples import CITIES


def cli(home, *args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_deploy_export_build_and_pay_at_the_edge(tmp_path, monkeypatch):
    home, out = tmp_path / "home", tmp_path / "edge"
    with start_dev_chain(payers=1) as chain:
        facilitator = FacilitatorSettings(
            rpc_url=chain.rpc_url, private_key=chain.facilitator.private_key, network=chain.network
        )
        with background_server(facilitator) as server:
            for name, value in {
                "CLAW402_ENV": "dev",
                "CLAW402_NETWORK": chain.network,
                "CLAW402_ASSET": chain.token,
                "CLAW402_ASSET_NAME": chain.token_name,
                "CLAW402_ASSET_VERSION": chain.token_version,
                "CLAW402_FACILITATOR_URL": server.url,
                "CLAW402_TREASURY": chain.treasury.address,
                "CLAW402_MAX_TIMEOUT_SECONDS": str(MAX_TIMEOUT),
            }.items():
                monkeypatch.setenv(name, value)
            creator = Wallet.create()
            deployed = cli(
                home,
                "deploy",
                str(CITIES),
                "--tenant",
                "acme",
                "--price",
                "0.005",
                "--key",
                "id",
                "--host",
                "data.acme.test",
                "--pay-to",
                creator.address,
            )["tenant"]
            directory = cli(home, "export-tenant-directory")
            assert directory["byHost"]["data.acme.test"]["tenantId"] == deployed["tenantId"]
            built = cli(home, "cloudflare", "build", "--out", str(out))
            assert built["ok"] and [t["slug"] for t in built["tenants"]] == ["acme"]
            assert json.loads((out / "directory.json").read_text()) == directory

            dispatcher = read_bundle(out / "dispatcher", "claw402-dispatcher")
            worker = read_bundle(out / "tenants" / deployed["workerName"])
            with LocalEdge(dispatcher, [worker]) as running:
                edge = EdgeClient(chain, running.url)
                payer = edge.payer()
                path = "/v1/records?country=Japan&_fields=city"
                payment = edge.sign(payer, "acme")
                r = edge.get(path, payment, headers={"host": "data.acme.test"})
                assert r.status_code == 200, r.text
                assert r.json()["items"] == [
                    {"city": "Tokyo"},
                    {"city": "Osaka"},
                    {"city": "Nagoya"},
                ]
                receipt = decode_payment_response_header(r.headers["payment-response"])
                assert receipt.success and receipt.payer == payer.address
                assert chain.balance(creator.address) == 5_000  # paid to the creator directly
                assert chain.balance(payer.address) == usdc(1) - 5_000
                unpaid = httpx.get(f"{running.url}/t/acme/v1/records")
                assert unpaid.status_code == 402 and "payment-required" in unpaid.headers
