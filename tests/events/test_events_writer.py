"""Events written by the child process land in the events table, and none are lost."""

from __future__ import annotations

import datetime
import time

import pytest

from claw402.dispatch.routing import route_for
from claw402.events.compact import Compact, compact, expand
from claw402.events.sink import EventSink
from claw402.events.store import EventStore


def batch(prefix: str, n: int) -> list[Compact]:
    return [compact("dispatch_start", f"{prefix}-{i}", None, path="/v1/records") for i in range(n)]


def test_the_child_writes_every_event_in_order(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    sink = EventSink.in_child(store.engine, interval=0.01, batch=7)
    child = sink._write._proc  # type: ignore[attr-defined]
    assert child is not None and child.poll() is None  # a live child, not the fallback
    sent = batch("a", 1200)
    for record in sent:
        sink.emit([record])
    sink.close()  # drains the queue, then the child's pipe
    assert child.returncode == 0 and sink._write._proc is None  # type: ignore[attr-defined]
    assert "in-process" not in caplog.text  # the child wrote them, not the fallback
    stored = store.read_events(limit=5000)
    assert [e["requestId"] for e in stored] == [f"a-{i}" for i in range(1200)]
    assert stored[0]["type"] == "dispatch_start" and stored[0]["details"] == {"path": "/v1/records"}
    assert stored[0]["ts"] == sent[0][1]  # the time of the emit, not of the write


def test_a_tenant_event_through_the_child_reads_back_as_its_record(store: EventStore) -> None:
    route = route_for(tenant_id="tnt_1", slug="acme", worker_name="tenant-acme", plan="pro")
    sent = compact("payment_settled", "r-1", route, status=200, duration_ms=12.34567,
                   payer="0xabc", amount="1000", x402Version=2)  # fmt: skip
    sink = EventSink.in_child(store.engine, interval=0.01)
    sink.emit([sent])
    sink.close()
    (stored,) = store.read_events()
    assert {k: v for k, v in stored.items() if k != "id"} == expand(sent)
    assert stored["limits"]["cpuMs"] == 200 and stored["durationMs"] == 12.346


def test_a_detail_the_pipe_cannot_carry_is_written_in_process(store: EventStore) -> None:
    sink = EventSink.in_child(store.engine, interval=0.01)
    when = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
    sink.emit([compact("payment_failed", "odd-1", None, status=402, at=when)])
    sink.emit([compact("payment_failed", "odd-2", None, status=402)])
    sink.close()
    stored = store.read_events()
    assert [e["requestId"] for e in stored] == ["odd-1", "odd-2"]
    assert stored[0]["details"] == {"at": "2026-12-02T00:00:00+00:00"}


def test_a_dead_child_means_writing_in_process(store: EventStore) -> None:
    sink = EventSink.in_child(store.engine, interval=0.01)
    for record in batch("before", 3):
        sink.emit([record])
    deadline = time.monotonic() + 10
    while len(store.read_events(limit=100)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sink._write._proc.kill()  # type: ignore[attr-defined]
    sink._write._proc.wait()  # type: ignore[attr-defined]
    for record in batch("after", 3):
        sink.emit([record])
    sink.close()
    ids = [e["requestId"] for e in store.read_events(limit=100)]
    assert ids == [f"before-{i}" for i in range(3)] + [f"after-{i}" for i in range(3)]


def test_the_child_finishes_what_is_in_the_pipe_when_the_gateway_is_gone(
    store: EventStore,
) -> None:
    from claw402.events.writer import ChildWriter

    writer = ChildWriter(store)
    writer([[item] for item in batch("orphan", 50)])
    proc = writer._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # what the gateway's death does to the pipe
    assert proc.wait(30) == 0
    assert len(store.read_events(limit=100)) == 50


def test_no_child_at_all_means_writing_in_process(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no processes left")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    sink = EventSink.in_child(store.engine, interval=0.01)
    for record in batch("solo", 4):
        sink.emit([record])
    sink.close()
    assert [e["requestId"] for e in store.read_events()] == [f"solo-{i}" for i in range(4)]
