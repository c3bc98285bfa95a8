"""The events table on both backends: a request's events are one row and read back as written."""

import sqlalchemy as sa

from claw402.dispatch.routing import route_for

ROUTE = route_for(tenant_id="tnt_acme", slug="acme", worker_name="tenant-acme-worker", plan="free")


def test_events_round_trip(store):
    tenant = ROUTE
    store.write_events(
        [
            {"type": "dispatch_start", "ts": 1.0, "requestId": "r1", "tenantId": tenant.tenant_id},
            {
                "type": "dispatch_success",
                "ts": 2.0,
                "requestId": "r1",
                "tenantId": tenant.tenant_id,
                "status": 200,
            },
            {"type": "dispatch_failure", "ts": 3.0, "requestId": "r2", "tenantId": None},
        ]
    )
    mine = store.read_events(tenant_id=tenant.tenant_id)
    assert [e["type"] for e in mine] == ["dispatch_start", "dispatch_success"]
    assert mine[1]["status"] == 200
    assert [e["requestId"] for e in store.read_events(limit=1)] == ["r2"]
    assert len(store.read_events(kind="dispatch_failure")) == 1


def test_events_in_large_batches_keep_their_order_and_fields(store):
    # SQLite gets multi-row INSERTs of 100: 250 events cross two chunk boundaries.
    batch = [
        {"type": "dispatch_start", "ts": float(i), "requestId": f"r{i}", "tenantId": "t1",
         "details": {"path": f"/v1/records/{i}"}}
        for i in range(250)
    ]  # fmt: skip
    store.write_events(batch)
    stored = store.read_events(limit=1000)
    assert [e["requestId"] for e in stored] == [f"r{i}" for i in range(250)]
    assert stored[137]["details"] == {"path": "/v1/records/137"}
    assert stored[249]["ts"] == 249.0


def test_an_event_reads_back_as_written_though_its_columns_are_not_stored_twice(store):
    from claw402.events.compact import event
    from claw402.events.schema import events

    tenant = ROUTE
    written = event("dispatch_start", "r1", tenant, path="/v1/records")
    edge = {"type": "payment_settled", "ts": 5.0, "requestId": "r2", "tenantId": None,
            "source": "edge", "note": None}  # fmt: skip
    store.write_events([written, edge])
    assert [{k: v for k, v in e.items() if k != "id"} for e in store.read_events()] == [
        written,
        {**edge, "workerName": None, "limits": None, "status": None, "durationMs": None,
         "reason": None},
    ]  # fmt: skip
    with store.engine.connect() as conn:
        data = conn.execute(events.select().order_by(events.c.id)).all()
    assert data[0].data == {"workerName": written["workerName"], "limits": written["limits"],
                            "details": {"path": "/v1/records"}}  # fmt: skip
    assert data[1].data == {"source": "edge", "note": None}  # a field of its own keeps its null


def test_events_stored_whole_by_an_earlier_release_read_back_the_same(store):
    from claw402.events.schema import events

    old = {
        "type": "dispatch_success", "ts": 2.0, "requestId": "r1", "tenantId": "t1",
        "workerName": "w", "limits": None, "status": 200, "durationMs": 1.5, "reason": None,
    }  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(events.insert().values(ts=2.0, type="dispatch_success", request_id="r1",
                                            tenant_id="t1", data=old))  # fmt: skip
    (stored,) = store.read_events()
    assert {k: v for k, v in stored.items() if k != "id"} == old


def _paid_trail(route, rid="r1"):
    from claw402.events.compact import event

    return [
        event("dispatch_start", rid, route, path="/v1/records"),
        event("payment_verified", rid, route, status=200, duration_ms=7.25, payer="0xabc"),
        event("payment_settled", rid, route, status=200, transaction="0x" + "ab" * 32),
        event("dispatch_success", rid, route, status=200, duration_ms=31.5),
    ]


def test_a_requests_events_are_one_row_and_read_back_as_written(store):
    from claw402.events.schema import events

    tenant = ROUTE
    trail = _paid_trail(tenant)
    other = {"type": "dispatch_failure", "ts": 9.0, "requestId": "r2", "tenantId": None,
             "status": 404, "reason": "tenant_not_found", "details": {"path": "/t/x"}}  # fmt: skip
    store.write_trails([trail, [other]])
    with store.engine.connect() as conn:
        rows = conn.execute(events.select().order_by(events.c.id)).all()
    assert len(rows) == 2
    assert rows[0].type == "dispatch_success" and rows[0].request_id == "r1"
    assert rows[0].steps == " dispatch_start payment_verified payment_settled "
    assert rows[1].steps is None
    # The earlier events leave out the route's fields they share with the row.
    assert all("workerName" not in step and "limits" not in step for step in rows[0].data["before"])
    stored = store.read_events()
    assert [{k: v for k, v in e.items() if k != "id"} for e in stored] == [
        *trail,
        {**other, "workerName": None, "limits": None, "durationMs": None},
    ]
    assert [e["id"] for e in stored] == [rows[0].id] * 4 + [rows[1].id]


def test_an_earlier_event_keeps_fields_that_differ_from_the_rows(store):
    tenant = ROUTE
    first = {"type": "dispatch_start", "ts": 1.0, "requestId": "r1", "tenantId": tenant.tenant_id,
             "workerName": None, "limits": None}  # fmt: skip
    last = {"type": "dispatch_success", "ts": 2.0, "requestId": "r1",
            "tenantId": tenant.tenant_id, "workerName": "w", "limits": {"cpuMs": 1},
            "status": 200}  # fmt: skip
    store.write_trails([[first, last]])
    start, done = store.read_events()
    assert start["workerName"] is None and start["limits"] is None and start["status"] is None
    assert done["workerName"] == "w" and done["limits"] == {"cpuMs": 1}


def test_filters_find_the_events_inside_a_row(store):
    tenant = ROUTE
    route = tenant
    store.write_trails([_paid_trail(route, "r1"), _paid_trail(route, "r2")])
    store.write_events([{"type": "payment_settled", "ts": 3.0, "requestId": "e1",
                            "tenantId": None, "source": "edge"}])  # fmt: skip
    settled = store.read_events(kind="payment_settled")
    assert [e["requestId"] for e in settled] == ["r1", "r2", "e1"]
    assert {e["type"] for e in settled} == {"payment_settled"}
    assert [e["requestId"] for e in store.read_events(kind="payment_settled", limit=2)] == [
        "r2", "e1",
    ]  # fmt: skip
    assert store.read_events(kind="payment") == []  # a type, not a part of one
    assert store.read_events(kind="dispatch_%") == []  # LIKE's wildcards mean themselves
    assert [e["type"] for e in store.read_events(request_id="r2")] == [
        "dispatch_start", "payment_verified", "payment_settled", "dispatch_success",
    ]  # fmt: skip
    # `limit` counts requests, each with its whole trail.
    assert len(store.read_events(tenant_id=tenant.tenant_id, limit=5)) == 8
    assert [e["requestId"] for e in store.read_events(tenant_id=tenant.tenant_id, limit=1)] == [
        "r2"] * 4  # fmt: skip
    newest = store.read_events(limit=2)
    assert [e["requestId"] for e in newest] == ["r2"] * 4 + ["e1"]


def _edge(rid, ts, kind="dispatch_start", **fields):
    return {"type": kind, "ts": ts, "requestId": rid, "tenantId": None, "source": "edge", **fields}


def test_limit_counts_requests_and_never_cuts_a_trail(store):
    # The edge reports each event as a row of its own: two requests' rows interleave.
    store.write_events([_edge("a", 1.0), _edge("b", 2.0), _edge("a", 3.0, "payment_challenge"),
                           _edge("b", 4.0, "dispatch_success"),
                           _edge("a", 5.0, "dispatch_success")])  # fmt: skip
    store.write_trails([[_edge("c", 6.0)]])
    assert [(e["requestId"], e["ts"]) for e in store.read_events(limit=2)] == [
        ("a", 1.0), ("a", 3.0), ("a", 5.0), ("c", 6.0)]  # fmt: skip
    assert [e["requestId"] for e in store.read_events(limit=1)] == ["c"]
    assert [e["requestId"] for e in store.read_events(limit=3)] == ["b", "b"] + ["a"] * 3 + [
        "c"]  # fmt: skip
    # A request's first event far behind the newest rows is still found.
    store.write_events([_edge(f"n{i}", 10.0 + i) for i in range(300)])
    store.write_events([_edge("a", 400.0, "payment_settled")])
    assert [e["ts"] for e in store.read_events(limit=1)] == [1.0, 3.0, 5.0, 400.0]
    assert len(store.read_events(limit=10_000)) == 307  # every event of every request
    assert [e["ts"] for e in store.read_events(kind="dispatch_success", limit=1)] == [5.0]


def test_a_trail_longer_than_a_row_holds_goes_on_in_the_next_row(store):
    from claw402.events.rows import MAX_TRAIL

    trail = [{"type": "dispatch_start", "ts": float(i), "requestId": "same", "tenantId": None,
              "correlationId": "agent-1" if i == 0 else None}
             for i in range(MAX_TRAIL * 2 + 3)]  # fmt: skip
    store.write_trails([trail])
    stored = store.read_events(limit=1)  # one request, its whole trail
    assert [e["ts"] for e in stored] == [float(i) for i in range(MAX_TRAIL * 2 + 3)]
    assert len({e["id"] for e in stored}) == 3
    assert {e["correlationId"] for e in stored} == {"agent-1"}  # every row keeps it


def test_a_request_is_found_by_its_own_id_or_the_callers(store):
    from claw402.events.compact import compact

    # Two calls sent with the same x-request-id are two requests with their own ids.
    store.write_compact_trails([
        [compact("dispatch_start", "own-1", None, correlation_id="agent-7", path="/a"),
         compact("dispatch_success", "own-1", None, status=200)],
        [compact("dispatch_start", "own-2", None, correlation_id="agent-7", path="/b"),
         compact("dispatch_success", "own-2", None, status=402)],
        [compact("dispatch_start", "own-3", None, path="/c")],
    ])  # fmt: skip
    store.write_events(
        [
            _edge("edge-1", 1.0, correlationId="agent-7"),
            _edge("edge-1", 2.0, "dispatch_success", correlationId="agent-7"),
        ]
    )
    shared = store.read_events(request_id="agent-7")
    assert [e["requestId"] for e in shared] == ["own-1", "own-1", "own-2", "own-2", "edge-1",
                                                "edge-1"]  # fmt: skip
    assert {e["correlationId"] for e in shared} == {"agent-7"}
    assert [e["requestId"] for e in store.read_events(request_id="agent-7", limit=1)] == [
        "edge-1", "edge-1"]  # fmt: skip
    own = store.read_events(request_id="own-2")
    assert [(e["type"], e["correlationId"]) for e in own] == [
        ("dispatch_start", "agent-7"), ("dispatch_success", "agent-7")]  # fmt: skip
    assert own[0]["details"] == {"path": "/b"}
    (alone,) = store.read_events(request_id="own-3")
    assert "correlationId" not in alone
    assert store.read_events(request_id="nobody") == []


def test_a_trail_of_compact_tuples_is_stored_as_its_records_would_be(store):
    from claw402.dispatch.routing import route_for
    from claw402.events.compact import compact, expand
    from claw402.events.schema import events

    route = route_for(tenant_id="tnt_1", slug="acme", worker_name="tenant-acme", plan="pro")
    other = route_for(tenant_id="tnt_1", slug="acme", worker_name="tenant-acme", plan="free")
    trails = [
        [compact("dispatch_start", "r1", route, correlation_id="agent-7", path="/v1/records"),
         compact("payment_challenge", "r1", route, status=402),
         compact("dispatch_success", "r1", route, status=402, duration_ms=0.123456)],
        [compact("dispatch_start", "r2", None, path="/x"),
         compact("payment_failed", "r2", other, status=409, reason="payment_replayed", payer="0x1"),
         compact("dispatch_failure", "r2", route, status=502, reason="boom")],
        [compact("dispatch_failure", "r3", None, status=404, reason="tenant_not_found")],
    ]  # fmt: skip
    store.write_compact_trails(trails)
    store.write_trails([[expand(item) for item in trail] for trail in trails])
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.ts, events.c.type, events.c.request_id, events.c.tenant_id,
                      events.c.data, events.c.steps, events.c.correlation_id)
            .order_by(events.c.id)
        ).all()  # fmt: skip
    assert rows[:3] == rows[3:]
    assert [row.correlation_id for row in rows[:3]] == ["agent-7", None, None]
    # Each request's two rows (its ids written twice) read back together, in order; the row's
    # correlation id goes with every event of its request.
    stored = store.read_events(limit=100)
    correlated = [{**expand(item), "correlationId": "agent-7"} for item in trails[0]]
    assert [{k: v for k, v in e.items() if k != "id"} for e in stored] == [
        *correlated,
        *correlated,
        *(expand(item) for trail in trails[1:] for item in [*trail, *trail]),
    ]
