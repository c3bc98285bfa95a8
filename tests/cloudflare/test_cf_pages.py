"""The dispatcher's pages for people as modules (`cloudflare/pages.py`): what is shipped with and
without payment settings, that it fits Cloudflare's script limits, and that a priced tenant
adds only its own small part of the page (the page's style sheet is stored once)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from cfapi import FakeCloudflare
from typer.testing import CliRunner

from claw402.cli.main import app
from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher
from claw402.cloudflare.pages import ORIGIN_PLACEHOLDER, SCRIPT_MODULE
from claw402.cloudflare.sizes import MiB, check_size
from claw402.config import Settings
from claw402.pages.paywall import PaywallUnavailable, assets
from claw402.payments.config import PaymentConfig
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.registry.store import Registry
from claw402.samples import CITIES

ADDRESS = "0x" + "11" * 20
CONFIG = PaymentConfig(
    network="eip155:31337",
    asset=ADDRESS,
    asset_name="USD Coin",
    asset_version="2",
    facilitator_url="http://127.0.0.1:9",
    treasury=ADDRESS,
)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> list[Tenant]:
    home: Path = tmp_path_factory.mktemp("pages")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    try:
        return [
            deploy(registry, settings, DeployRequest(source=CITIES, slug=f"c{i}", price=f"0.00{i}",
                                                     description=f"Cities, take {i}"))
            for i in range(1, 6)
        ]  # fmt: skip
    finally:
        registry.close()


def test_without_payments_no_page_script_is_shipped(tenants):
    bundle = build_dispatcher(tenants)
    names = {m.name for m in bundle.modules}
    assert {"pages.js", "catalogue.js", "paywallpage.js"} <= names and SCRIPT_MODULE not in names
    assert bundle.module("paywallpage.js").content.endswith(b"export default null;\n")
    catalogue = bundle.module("catalogue.js").content.decode()
    assert ORIGIN_PLACEHOLDER in catalogue and "Cities, take 5" in catalogue


def test_with_payments_the_script_ships_and_fits_the_free_plan(tenants):
    bundle = build_dispatcher(tenants, DispatcherOptions(payment=CONFIG))
    script = bundle.module(SCRIPT_MODULE)
    assert script.content == assets().script and script.content_type == "text/plain"
    size = check_size(bundle, "free")  # raises ScriptTooLarge past 3 MiB compressed
    assert size.gzip < 1 * MiB, size
    pages = bundle.module("paywallpage.js").content.decode()
    assert assets().script_name in pages and "Cities, take 3" in pages


def test_a_priced_tenant_adds_a_small_part_of_the_page(tenants):
    def pages_gzip(count: int) -> int:
        bundle = build_dispatcher(tenants[:count], DispatcherOptions(payment=CONFIG))
        return len(gzip.compress(bundle.module("paywallpage.js").content))

    one, five = pages_gzip(1), pages_gzip(5)
    assert one > 1000  # the shared style sheet and markup
    assert (five - one) / 4 < 600, (one, five)  # per tenant: its offer and terms only


def test_each_directory_publish_refreshes_the_catalogue(tmp_path, monkeypatch):
    """`402claw deploy --publish`: the dispatcher uploaded with a tenant lists it at `/`."""
    home = tmp_path / "home"
    for name in ("CLAW402_ENV", "CLAW402_NETWORK", "CLAW402_ASSET", "CLAW402_FACILITATOR_URL",
                 "CLAW402_DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    with FakeCloudflare() as fake:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "test-token")
        listed = []
        for slug, description in (("cities", "First cities"), ("towns", "Then towns")):
            args = ["deploy", str(CITIES), "--tenant", slug, "--price", "0", "--description",
                    description, "--publish", "--execute", "--account-id", "acc1",
                    "--dispatch-namespace", "ns1", "--home", str(home), "--json"]  # fmt: skip
            done = runner.invoke(app, args)
            assert done.exit_code == 0, done.output
            dispatcher = fake.requests[-1]
            assert dispatcher.path.endswith("/scripts/claw402-dispatcher")
            listed.append(dispatcher.part("catalogue.js").content.decode())
        assert "First cities" in listed[0] and "Then towns" not in listed[0]
        assert "First cities" in listed[1] and "Then towns" in listed[1]


def test_without_the_npm_package_browsers_keep_the_json_402(tenants, monkeypatch, caplog):
    def unavailable() -> None:
        raise PaywallUnavailable("cannot run the paywall package: node missing")

    monkeypatch.setattr("claw402.cloudflare.pages.assets", unavailable)
    bundle = build_dispatcher(tenants, DispatcherOptions(payment=CONFIG))
    assert bundle.module("paywallpage.js").content.endswith(b"export default null;\n")
    assert SCRIPT_MODULE not in {m.name for m in bundle.modules}
    assert "browsers get the JSON 402: cannot run the paywall package" in caplog.text
