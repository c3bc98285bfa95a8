"""The gateway's runtime cache: bounded by its size, and a rebuilt runtime answers the same."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from claw402.config import Settings
from claw402.gateway.app import Gateway
from claw402.gateway.runtimes import ENV_RUNTIMES, MAX_RUNTIMES, Runtimes
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES
from claw402.serving import ServerThread

# Every route a tenant answers, free documents and data alike.
PATHS = (
    "/v1/records",
    "/v1/records?_sort=-population&_limit=3&_count=exact&_facet=continent",
    "/v1/records/1",
    "/v1/records/999999",
    "/v1/schema",
    "/v1/openapi.json",
    "/docs",
    "/",
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, httpx.Client]]:
    """A gateway keeping two runtimes, serving three free cities tenants."""
    home = tmp_path_factory.mktemp("runtimes")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    gateway = Gateway(registry, runtimes=2)
    for slug in ("a", "b", "c"):
        deploy(registry, settings, DeployRequest(source=CITIES, slug=slug, price="0", key="id"))
    with ServerThread(gateway) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield gateway, client
    registry.close()


def _answers(client: httpx.Client, slug: str) -> list[tuple[int, str | None, bytes]]:
    found = []
    for path in PATHS:
        response = client.get(f"/t/{slug}{path}", headers={"accept": "application/json"})
        found.append((response.status_code, response.headers.get("etag"), response.content))
    page = client.get(f"/t/{slug}/", headers={"accept": "text/html"})
    found.append((page.status_code, page.headers.get("etag"), page.content))
    return found


def _slugs(gateway: Gateway) -> list[str]:
    by_id = {t.tenant_id: t.slug for t in gateway.registry.list_tenants()}
    return [by_id[tenant_id] for tenant_id, _ in gateway.runtimes.kept()]


def test_the_cache_keeps_at_most_its_size_least_recently_used_out(small) -> None:
    gateway, client = small
    for slug in ("a", "b", "c"):
        assert client.get(f"/t/{slug}/v1/records").status_code == 200
    assert _slugs(gateway) == ["b", "c"]  # `a` was used least recently
    assert client.get("/t/b/v1/schema").status_code == 200
    assert client.get("/t/a/v1/records").status_code == 200
    assert _slugs(gateway) == ["b", "a"]  # `c` went: `b` had been used since
    assert len(gateway.runtimes) == 2


def test_a_rebuilt_runtime_answers_identically(small) -> None:
    gateway, client = small
    first = _answers(client, "a")
    kept = gateway.runtimes.kept()[-1]
    client.get("/t/b/v1/records")
    client.get("/t/c/v1/records")
    assert kept not in gateway.runtimes.kept()  # `a`'s runtime was dropped
    again = _answers(client, "a")  # served by a rebuilt runtime
    assert kept in gateway.runtimes.kept()
    assert [status for status, _, _ in first] == [200, 200, 200, 404, 200, 200, 200, 200, 200]
    for path, before, after in zip((*PATHS, "/ (html)"), first, again, strict=True):
        if path == "/v1/records/999999":  # its body names the request id
            assert before[:2] == after[:2]
            continue
        assert before == after, path


def test_the_size_comes_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_RUNTIMES, raising=False)
    assert Runtimes().size == MAX_RUNTIMES
    monkeypatch.setenv(ENV_RUNTIMES, "300")
    assert Runtimes().size == 300
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv(ENV_RUNTIMES, bad)
        with pytest.raises(ValueError, match=f"{ENV_RUNTIMES} must be a positive integer"):
            Runtimes()
    with pytest.raises(ValueError, match="must be positive"):
        Runtimes(0)


def test_a_kept_runtime_stays_small(small) -> None:
    """Thousands are kept per worker: each must hold references, not copies of documents."""
    gateway, client = small
    client.get("/t/a/v1/records")
    tenant = gateway.registry.get("a")
    assert tenant is not None
    many = [dataclasses.replace(tenant, tenant_id=f"copy{i}") for i in range(500)]
    runtimes = Runtimes(1000)
    runtimes.get(many[0]).schema()  # the shared column objects are made once
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for copy in many[1:]:
            runtimes.get(copy).schema()  # with its schema document encoded
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / (len(many) - 1)
    finally:
        tracemalloc.stop()
    assert held < 2500, f"{held:.0f} bytes a runtime"


@pytest.mark.parametrize(("args", "env"), [(["--runtimes", "0"], None), ([], "lots")])
def test_serve_refuses_a_bad_size_before_serving(tmp_path: Path, monkeypatch, args, env) -> None:
    from typer.testing import CliRunner

    from claw402.cli.main import app

    monkeypatch.setenv(ENV_RUNTIMES, env or "")  # restored after the test, whatever serve sets
    result = CliRunner().invoke(app, ["serve", "--home", str(tmp_path), "--port", "0", *args])
    assert result.exit_code == 2
    assert f"{ENV_RUNTIMES} must be a positive integer" in result.output
    assert not (tmp_path / "registry.sqlite3").exists()  # nothing opened, nothing created


def test_serve_hands_the_size_to_its_workers(monkeypatch) -> None:
    from claw402.cli.serve import _runtimes

    monkeypatch.setenv(ENV_RUNTIMES, "")
    _runtimes(500)
    assert Runtimes().size == 500  # what a worker's gateway reads
