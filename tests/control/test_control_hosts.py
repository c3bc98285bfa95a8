"""Custom hosts on a platform with API keys: stored unverified, routed once proven or approved.

The DNS proof runs for real: a small DNS server (dnslib) on 127.0.0.1 answers the TXT
lookups the verifier makes through dnspython (`CLAW402_DNS_NAMESERVER` points it there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from typer.testing import CliRunner

from claw402.cli.main import app
from claw402.cloudflare.directory import export_directory
from claw402.config import load_settings
from claw402.registry.store import Registry
from claw402.samples import CITIES

runner = CliRunner()


class TxtRecords(BaseResolver):
    """Answers TXT queries from a dict the test edits; any other name is NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.asked.append(name)
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in self.records[name]:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=0))
        return reply


@pytest.fixture
def dns(monkeypatch) -> Iterator[TxtRecords]:
    records = TxtRecords()
    server = DNSServer(records, address="127.0.0.1", port=0,
                       logger=DNSLogger(prefix=False, logf=lambda _: None))  # fmt: skip
    server.start_thread()
    try:
        monkeypatch.setenv("CLAW402_DNS_NAMESERVER", f"127.0.0.1:{server.server.server_address[1]}")
        yield records
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def cli(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("CLAW402_DATABASE_URL", database_url)
    monkeypatch.delenv("CLAW402_API_KEY", raising=False)
    home = str(tmp_path / "home")

    def run(*args: str, ok: bool = True, key: str | None = None) -> dict:
        extra = ["--api-key", key] if key else []
        result = runner.invoke(app, [*args, *extra, "--home", home, "--json"])
        assert (result.exit_code == 0) is ok, result.output
        return json.loads(result.stdout)

    run.home = home  # type: ignore[attr-defined]
    return run


def deploy(cli, slug: str, *hosts: str, **kw) -> dict:
    more = [arg for h in hosts for arg in ("--host", h)]
    return cli("deploy", str(CITIES), "--tenant", slug, "--price", "0.01", *more, **kw)


def routed(cli) -> dict[str, str]:
    """Host -> slug, as the gateway and the Cloudflare directory route them."""
    registry = Registry.open(load_settings(cli.home))
    try:
        tenants = registry.list_tenants()
    finally:
        registry.close()
    by_host = export_directory(tenants)["byHost"]
    gateway = {h: t.slug for t in tenants for h in t.route().hosts}
    assert {h: e["slug"] for h, e in by_host.items()} == gateway
    return gateway


def test_a_creators_host_routes_only_once_dns_proves_it(cli, dns) -> None:
    deploy(cli, "ops", "ops.example.com")  # one operator, no keys: routes at once
    assert cli("hosts", "list")["hosts"][0]["status"] == "open"
    cli("auth", "create-user", "root")
    admin = cli("auth", "create-key", "--user", "root", "--scope", "admin")["key"]
    cli("auth", "create-user", "alice", key=admin)
    cli("auth", "create-user", "bob", key=admin)
    alice = cli("auth", "create-key", "--user", "alice", "--scope", "deploy", key=admin)["key"]
    bob = cli("auth", "create-key", "--user", "bob", "--scope", "deploy", key=admin)["key"]

    tenant = deploy(cli, "acme", "API.Acme.example", key=alice)["tenant"]
    assert tenant["hostStatus"] == {"api.acme.example": "unverified"}
    assert routed(cli) == {"ops.example.com": "ops"}
    assert cli("hosts", "list", ok=False)["error"] == "api_key_required"
    assert cli("hosts", "list", "--tenant", "acme", ok=False, key=bob)["error"] == (
        "not_tenant_owner"
    )
    assert cli("hosts", "list", key=bob)["hosts"] == []  # only their own tenants' hosts
    (claim,) = cli("hosts", "list", "--tenant", "acme", key=alice)["hosts"]
    assert claim["status"] == "unverified" and not claim["routable"]
    token = claim["token"]
    assert claim["record"] == {"name": "_402claw.api.acme.example", "type": "TXT", "value": token}

    assert cli("hosts", "verify", "api.acme.example", ok=False, key=bob)["error"] == (
        "not_tenant_owner"
    )
    missing = cli("hosts", "verify", "api.acme.example", ok=False, key=alice)
    assert missing["error"] == "host_not_verified" and "no TXT record" in missing["detail"]
    assert token in missing["detail"] and "_402claw.api.acme.example" in missing["detail"]
    dns.records["_402claw.api.acme.example"] = ["402claw-someone-elses-token"]
    wrong = cli("hosts", "verify", "api.acme.example", ok=False, key=alice)
    assert "402claw-someone-elses-token" in wrong["detail"]
    assert dns.asked == ["_402claw.api.acme.example"] * 2
    assert routed(cli) == {"ops.example.com": "ops"}  # failures changed nothing

    dns.records["_402claw.api.acme.example"] = ["v=spf1 -all", token]
    verified = cli("hosts", "verify", "api.acme.example", key=alice)
    assert verified["changed"] and verified["host"]["status"] == "verified"
    assert routed(cli) == {"ops.example.com": "ops", "api.acme.example": "acme"}
    assert not cli("hosts", "verify", "api.acme.example", key=alice)["changed"]
    deploy(cli, "acme", key=alice)  # a re-deploy keeps the host and its state
    assert cli("hosts", "list", "--tenant", "acme", key=alice)["hosts"][0]["status"] == "verified"

    deploy(cli, "beta", "data.beta.example", key=bob)
    assert cli("hosts", "approve", "data.beta.example", ok=False, key=bob)["error"] == (
        "missing_scope"
    )
    assert cli("hosts", "approve", "data.beta.example", key=admin)["host"]["status"] == "approved"
    assert routed(cli)["data.beta.example"] == "beta"
    assert cli("hosts", "verify", "nobody.example", ok=False, key=alice)["error"] == (
        "host_not_found"
    )

    actions = [(e["action"], e["subject"]) for e in cli("audit", "list", key=admin)["entries"]]
    for expected in [("host.claimed", "host:api.acme.example"),
                     ("host.verification_failed", "host:api.acme.example"),
                     ("host.verified", "host:api.acme.example"),
                     ("host.approved", "host:data.beta.example")]:  # fmt: skip
        assert expected in actions
    assert cli("audit", "verify", key=admin)["ok"]


def test_a_refused_host_is_audited_and_changes_nothing(cli, monkeypatch) -> None:
    monkeypatch.setenv("CLAW402_RESERVED_HOSTS", "402claw.example, status.example")
    monkeypatch.setenv("CLAW402_PUBLIC_URL", "https://gw.example.net")
    before = deploy(cli, "acme", "api.acme.example")["tenant"]
    for host in ("127.0.0.1", "[::1]", "2130706433", "localhost", "x.402claw.example",
                 "gw.example.net", "api.acme.example:443", "api.acme.example/x"):  # fmt: skip
        refused = deploy(cli, "acme", host, ok=False)
        assert refused["error"] == "host_refused", refused
        assert deploy(cli, "eve", host, ok=False)["error"] == "host_refused"
    tenants = cli("list")["tenants"]
    assert [t["slug"] for t in tenants] == ["acme"]
    assert tenants[0]["hosts"] == before["hosts"] and tenants[0]["dataset"]["version"] == 1
    entries = [e for e in cli("audit", "list", "--limit", "100")["entries"]
               if e["action"] == "host.refused"]  # fmt: skip
    assert len(entries) == 16
    assert entries[0]["details"]["hosts"] == ["127.0.0.1"]
    assert "IP address" in entries[0]["details"]["reason"]
