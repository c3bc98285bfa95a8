"""Custom hosts can neither take the gateway over nor put words in its 402s.

A custom host outranks `/t/<slug>` routing: a tenant holding the gateway's own name (an IP
literal, `localhost`, the public host, a reserved name) would answer for every tenant. And
the resource URL a caller is asked to pay for is built from the public URL or the tenant's
own host, never from whatever Host header the caller sent.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gwpriced import count_guarded, priced_gateway
from x402.http.utils import decode_payment_required_header

from claw402.config import Settings
from claw402.control import hosts
from claw402.devstack import start_dev_stack
from claw402.events.sink import EventSink
from claw402.gateway.app import Gateway
from claw402.registry.deploy import DeployRequest, HostRefused, deploy
from claw402.registry.models import HOST_UNVERIFIED
from claw402.registry.store import NewVersion, Registry, TenantSpec
from claw402.samples import CITIES
from claw402.serving import ServerThread

PUBLIC = "https://api.402claw.example"


def resource(r: httpx.Response) -> str:
    assert r.status_code == 402, r.text
    return decode_payment_required_header(r.headers["payment-required"]).resource.url  # type: ignore[union-attr]


def test_a_host_naming_the_gateway_is_refused_and_changes_nothing(served) -> None:
    acme = served.deploy(slug="acme", price="0")
    for host in ("127.0.0.1", "[::1]:8402", "2130706433", "0x7f.1", "localhost", "a.localhost"):
        with pytest.raises(HostRefused, match=r"IP address|loopback"):
            served.deploy(slug="eve", price="0", hosts=[host])
        with pytest.raises(HostRefused):
            served.deploy(slug="acme", price="0", hosts=["api.acme.test", host])
    assert served.registry.get("eve") is None
    assert not (served.settings.datasets_dir / "eve").exists()  # refused before any ingest
    assert served.registry.get("acme") == acme
    r = served.client.get("/t/acme/v1/schema")
    assert r.status_code == 200 and r.headers["x-tenant-id"] == acme.tenant_id


def test_reserved_names_and_the_public_host_are_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}",
                        public_url=PUBLIC, reserved_hosts=("platform.example",))  # fmt: skip
    registry = Registry.open(settings)
    try:
        for host in ("api.402claw.example", "x.api.402claw.example", "platform.example"):
            with pytest.raises(HostRefused, match="reserved by the platform"):
                request = DeployRequest(source=CITIES, slug="eve", price="0", hosts=[host])
                deploy(registry, settings, request)
        assert registry.list_tenants() == []
    finally:
        registry.close()


def test_the_gateway_never_routes_by_a_name_of_its_own(tmp_path: Path) -> None:
    """Hosts claimed before these rules existed (written straight into the registry) are
    ignored: every tenant stays reachable under `/t/<slug>` whatever Host a caller sends."""
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}")
    registry = Registry.open(settings)
    acme = deploy(registry, settings, DeployRequest(source=CITIES, slug="acme", price="0"))
    assert acme.dataset is not None
    ds = acme.dataset
    taken = ("127.0.0.1", "localhost", "gw.402claw.example", "platform.example", "eve.example")
    registry.deploy(
        TenantSpec(slug="eve", worker_name="tenant-eve-worker", plan="free", price_atomic=0,
                   hosts=taken),
        NewVersion(ds.source_path, ds.format, ds.rows, ds.bytes, ds.columns, ds.key,
                   ds.data_path),
    )  # fmt: skip
    eve = registry.get("eve")
    assert eve is not None
    gateway = Gateway(registry, sink=EventSink.in_process(registry.engine, interval=0.02),
                      public_url="http://gw.402claw.example:8402",
                      reserved_hosts=["platform.example"])  # fmt: skip
    try:
        with ServerThread(gateway) as server, httpx.Client(base_url=server.url) as client:
            for host in (None, "127.0.0.1", "localhost:8402", "gw.402claw.example:8402",
                         "platform.example"):  # fmt: skip
                headers = {"host": host} if host else {}
                r = client.get("/t/acme/v1/schema", headers=headers)
                assert r.status_code == 200, (host, r.text)
                assert r.headers["x-tenant-id"] == acme.tenant_id, host
                assert client.get("/v1/schema", headers=headers).status_code == 404, host
            r = client.get("/v1/schema", headers={"host": "eve.example"})  # its real name
            assert r.status_code == 200 and r.headers["x-tenant-id"] == eve.tenant_id
    finally:
        registry.close()


def test_the_402_and_the_openapi_name_the_public_url_whatever_the_host(tmp_path: Path) -> None:
    with priced_gateway(tmp_path, public_url=PUBLIC + "/") as (_, _, gateway, client):
        guarded = count_guarded(gateway)
        junk = ("evil.example", "127.0.0.1", "evil.example:666", None)
        for host in junk:
            r = client.get("/t/cities/v1/records", headers={"host": host} if host else {})
            assert resource(r) == f"{PUBLIC}/t/cities/v1/records", host
        assert len(guarded) == 1  # one resource URL: one challenge, replayed for every Host
        for host in ("cities.test", "CITIES.test:8402"):  # the tenant's own host
            r = client.get("/v1/records", headers={"host": host})
            assert resource(r) == "https://cities.test/v1/records"
        assert len(guarded) == 2
        for host in junk:
            headers = {"host": host} if host else {}
            spec = client.get("/t/cities/v1/openapi.json", headers=headers).json()
            assert spec["servers"] == [{"url": f"{PUBLIC}/t/cities"}], host
        spec = client.get("/v1/openapi.json", headers={"host": "cities.test"}).json()
        assert spec["servers"] == [{"url": "https://cities.test"}]


def test_without_a_public_url_only_a_loopback_host_is_echoed(tmp_path: Path) -> None:
    """Development without `--public-url`: `localhost:PORT` and `127.0.0.1:PORT` come back as
    typed; any other Host gives the address the server accepted the connection on."""
    with priced_gateway(tmp_path) as (_, _, _, client):
        server = str(client.base_url).rstrip("/")  # http://127.0.0.1:PORT
        for host, root in (("evil.example", server), ("evil.example:8402", server),
                           ("127.0.0.1:abc", server), ("localhost:1234", "http://localhost:1234"),
                           ("[::1]:8402", "http://[::1]:8402"),
                           ("127.0.0.1", "http://127.0.0.1")):  # fmt: skip
            r = client.get("/t/cities/v1/records", headers={"host": host})
            assert resource(r) == f"{root}/t/cities/v1/records", host
            spec = client.get("/t/cities/v1/openapi.json", headers={"host": host}).json()
            assert spec["servers"] == [{"url": f"{root}/t/cities"}], host


def test_an_unverified_host_routes_once_approved(served) -> None:
    acme = served.deploy(slug="acme", price="0", hosts=["api.acme.test"],
                         host_status=HOST_UNVERIFIED)  # fmt: skip
    by_host = {"host": "api.acme.test"}
    assert served.client.get("/v1/schema", headers=by_host).status_code == 404
    assert served.client.get("/t/acme/v1/schema").status_code == 200
    hosts.approve(served.registry, None, "api.acme.test")  # no keys yet: the local operator
    deadline = time.monotonic() + 1  # running gateways re-read the registry within 10 ms
    while (r := served.client.get("/v1/schema", headers=by_host)).status_code != 200:
        assert time.monotonic() < deadline, "the approved host did not route within a second"
        time.sleep(0.005)
    assert r.headers["x-tenant-id"] == acme.tenant_id


CLI = str(Path(sys.executable).with_name("402claw"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_public_url_roots_every_resource_url(tmp_path: Path) -> None:
    """`402claw serve --public-url` as a user runs it (its own process, on granian)."""
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.001"))
    registry.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    env["CLAW402_HOME"] = str(tmp_path)
    args = [CLI, "serve", "--port", str(free_port()), "--public-url", "ftp://x"]
    bad = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--public-url" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--port", str(port), "--public-url", PUBLIC + "/"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "402claw serve exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "402claw serve did not start"
            time.sleep(0.05)
        evil = {"host": "evil.example"}
        r = httpx.get(f"{url}/t/cities/v1/records", headers=evil, timeout=10)
        assert r.status_code == 402  # no payment network here: the gateway says so
        assert r.json()["detail"].startswith(f"{PUBLIC}/t/cities/v1/records costs")
        spec = httpx.get(f"{url}/t/cities/v1/openapi.json", headers=evil, timeout=10).json()
        assert spec["servers"] == [{"url": f"{PUBLIC}/t/cities"}]
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dev_roots_resource_urls_at_its_own_address(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    with start_dev_stack(settings) as stack:
        deploy(stack.registry, settings,
               DeployRequest(source=CITIES, slug="cities", price="0.001"))  # fmt: skip
        r = httpx.get(f"{stack.gateway.url}/t/cities/v1/records",
                      headers={"host": "evil.example"}, timeout=10)  # fmt: skip
        assert resource(r) == f"{stack.gateway.url}/t/cities/v1/records"
