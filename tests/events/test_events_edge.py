"""The one way the dispatch Worker's batches are checked and stored (`events.edge.ingest`)."""

from __future__ import annotations

import orjson
import pytest

from claw402.events.edge import MAX_BATCH, InvalidEvents, authorized, check_batch, ingest
from claw402.events.kinds import KINDS, PAYMENT_SETTLED
from claw402.events.store import (
    EdgeSettlements,
    EventStore,
    any_edge_settlement,
    edge_settlements,
)

TOKEN = "edge-events-token"


@pytest.mark.parametrize(("payload", "message"), [
    ([], "expected"),
    ({"events": []}, "expected"),
    ({"events": ["x"]}, "event 0 is not an object"),
    ({"events": [{"type": "dispatch_start", "ts": 1.0}]}, "requestId is missing"),
    ({"events": [{"type": "drop_tables", "ts": 1, "requestId": "r"}]}, "unknown type"),
    ({"events": [{"type": "dispatch_start", "ts": True, "requestId": "r"}]}, "ts is missing"),
])  # fmt: skip
def test_bad_batches_are_refused(payload, message):
    with pytest.raises(InvalidEvents, match=message):
        check_batch(payload)
    assert not authorized("Bearer nope", TOKEN) and authorized(f"bearer {TOKEN}", TOKEN)


def test_every_kind_is_accepted_and_only_those():
    batch = [{"type": kind, "ts": 1.0, "requestId": f"r-{kind}"} for kind in sorted(KINDS)]
    assert check_batch({"events": batch}) == batch
    with pytest.raises(InvalidEvents, match="unknown type 'payment_refunded'"):
        check_batch({"events": [{"type": "payment_refunded", "ts": 1.0, "requestId": "r"}]})
    with pytest.raises(InvalidEvents, match=f"1 to {MAX_BATCH} events"):
        check_batch({"events": batch * (MAX_BATCH // len(batch) + 1)})


def _settled(rid: str, tx: str) -> dict:
    return {"type": PAYMENT_SETTLED, "ts": 2.0, "requestId": rid, "tenantId": "tnt_x",
            "details": {"transaction": tx, "payer": "0xabc"}}  # fmt: skip


def test_ingest_stores_a_batch_as_the_edges_and_the_ledger_finds_its_settlements(
    store: EventStore,
):
    tx = "0x" + "AB" * 32
    start = {"type": "dispatch_start", "ts": 1.0, "requestId": "e-1", "tenantId": "tnt_x",
             "correlationId": "agent-1"}  # fmt: skip
    with store.engine.connect() as conn:
        assert not any_edge_settlement(conn)
    assert ingest(store, orjson.dumps({"events": [start, _settled("e-1", tx)]})) == 2
    stored = store.read_events()
    assert [(e["type"], e["source"], e.get("correlationId")) for e in stored] == [
        ("dispatch_start", "edge", "agent-1"), (PAYMENT_SETTLED, "edge", None)]  # fmt: skip
    store.write_events([_settled("self-1", tx)])  # the same, not from the edge: never a hint
    with store.engine.connect() as conn:
        assert any_edge_settlement(conn)
        (found,) = edge_settlements(conn, tx.lower())
        assert edge_settlements(conn, "0x" + "cd" * 32) == []
    assert found["requestId"] == "e-1" and found["details"]["transaction"] == tx


@pytest.mark.parametrize("body", [
    b"{not json",
    orjson.dumps({"events": [_settled("e-1", "0x1"), {"type": "nope", "ts": 1, "requestId": "r"}]}),
    orjson.dumps({"events": [{**_settled("e-1", "0x1"), "requestId": "r" * 65}]}),
])  # fmt: skip
def test_a_bad_batch_stores_nothing(store: EventStore, body: bytes):
    with pytest.raises(InvalidEvents):
        ingest(store, body)
    assert store.read_events() == []


def test_a_runs_index_of_edge_settlements_reads_each_row_once_and_sees_late_ones(
    store: EventStore,
):
    """A reconcile run looks up each treasury transfer's edge events: the hashes are read once,
    then only newer rows when a hash is missing, so an event that came in during the run is
    still found."""
    early, late = "0x" + "aa" * 32, "0x" + "bb" * 32
    ingest(store, orjson.dumps({"events": [_settled("e-1", early)]}))
    settlements = EdgeSettlements()
    with store.engine.connect() as conn:
        assert [e["requestId"] for e in settlements.of(conn, early.upper())] == ["e-1"]
        assert settlements.of(conn, late) == []
    ingest(store, orjson.dumps({"events": [_settled("e-2", late), _settled("e-3", late)]}))
    store.write_events([_settled("self-2", late)])  # not from the edge
    with store.engine.connect() as conn:
        assert [e["requestId"] for e in settlements.of(conn, late)] == ["e-2", "e-3"]
        assert [e["requestId"] for e in settlements.of(conn, early)] == ["e-1"]
