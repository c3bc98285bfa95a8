"""`402claw serve --workers 2`: requests spread over both workers, a deploy reaches both, every
request's events are written once, and a killed serve leaves no worker behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from claw402.config import Settings
from claw402.events.schema import events
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES
from procs import running

CLI = str(Path(sys.executable).with_name("402claw"))
PREFIX = 16  # x-request-id: a per-process prefix, then a counter (gateway/app.py)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Settings, Registry]]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    registry = Registry.open(settings)
    deploy(registry, settings, DeployRequest(source=CITIES, slug="cities", price="0"))
    yield settings, registry
    registry.close()


@contextmanager
def serve(
    settings: Settings, *args: str, env_extra: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with socket.socket() as sock:  # a free port, as tests/conftest.py's free_port finds one
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    env.update(CLAW402_HOME=str(settings.home), CLAW402_DATABASE_URL=settings.database_url)
    env.update(env_extra or {})
    with running([CLI, "serve", "--port", str(port), *args], env=env, stdin=subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "402claw serve did not start"
            time.sleep(0.05)
        if "--workers" in args:  # /healthz answers once one worker is up; wait for them all
            wanted = int(args[args.index("--workers") + 1])
            while len(workers_of(spread(f"{url}/healthz", 16))) < wanted:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "not every worker of 402claw serve started"
                time.sleep(0.1)
        yield url, proc


def spread(url: str, n: int = 120) -> list[httpx.Response]:
    """`n` GETs, each on a new connection, 8 at a time (a kept-alive connection stays with
    the worker that accepted it)."""

    def get(_: int) -> httpx.Response:
        return httpx.get(url, timeout=20, headers={"connection": "close"})

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(get, range(n)))


def workers_of(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(r.headers["x-request-id"][:PREFIX] for r in responses)


def test_two_workers_share_requests_see_deploys_and_write_every_event(home) -> None:
    settings, registry = home
    with serve(settings, "--workers", "2") as (url, proc):
        first = spread(f"{url}/t/cities/v1/records?_limit=2")
        assert {r.status_code for r in first} == {200}
        assert len(workers_of(first)) == 2, workers_of(first)

        # A new tenant and a new version of an old one, deployed while serving.
        later = Path(settings.home) / "later.csv"
        later.write_text("id,word\n1,new\n2,data\n")
        deploy(registry, settings, DeployRequest(source=later, slug="later", price="0"))
        deploy(registry, settings, DeployRequest(source=later, slug="cities", price="0"))
        time.sleep(0.2)  # an update shows within the directory's poll interval (10 ms)
        seen = spread(f"{url}/t/later/v1/records") + spread(f"{url}/t/cities/v1/records")
        assert {r.status_code for r in seen} == {200}
        assert len(workers_of(seen)) == 2
        assert {r.json()["items"][0]["word"] for r in seen} == {"new"}

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output

    ids = [r.headers["x-request-id"] for r in first + seen]
    with registry.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.request_id).where(events.c.request_id.in_(ids))
        ).all()
    assert sorted(row[0] for row in rows) == sorted(ids)  # every request's row, once


def test_workers_default_to_the_cores_and_are_checked(home) -> None:
    settings, _ = home
    with serve(settings) as (_, proc):
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert f"{os.cpu_count()} workers" in output
    bad = subprocess.run([CLI, "serve", "--workers", "0"], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "--workers" in bad.stderr


def test_killed_serve_leaves_no_worker(home) -> None:
    settings, _ = home
    with serve(settings, "--workers", "2") as (url, proc):
        assert len(workers_of(spread(f"{url}/t/cities/v1/schema", 40))) == 2
        group = proc.pid  # `running` makes serve the leader of its own process group
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while True:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break  # nothing of the group is left: workers, event writers
            assert time.monotonic() < deadline, "a worker or event writer outlived serve"
            time.sleep(0.1)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=1)


def test_metrics_add_up_every_worker_and_take_a_token(home) -> None:
    settings, _ = home
    token = {"CLAW402_METRICS_TOKEN": "s3cret"}
    with serve(settings, "--workers", "2", env_extra=token) as (url, _):
        served = spread(f"{url}/t/cities/v1/records?_limit=1", 60)
        assert len(workers_of(served)) == 2  # both workers counted some
        assert {r.status_code for r in spread(f"{url}/t/nobody/v1/records", 5)} == {404}
        refused = httpx.get(f"{url}/metrics")
        page = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer s3cret"})
    assert refused.status_code == 401 and refused.json()["error"] == "metrics_token_required"
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.text)
        for s in family.samples
    }
    assert samples[("claw402_requests_total", (("status", "200"), ("tenant", "cities")))] == 60
    assert samples[("claw402_requests_total", (("status", "404"), ("tenant", "-")))] == 5
    assert samples[("claw402_request_duration_seconds_count", ())] == 65
