"""How a request's events fill one row of the events table, and how a row reads back.

A row holds one request's trail: `type`, `ts` and `data` are its last event's, `data["before"]`
the earlier ones (less the fields they share with the row), and `steps` lists their kinds
(" a b ") so a filter by kind finds them. `data` holds only what the columns do not, less the
standard fields that are null; rows of an earlier release hold the whole record in `data` and
read back the same. A trail longer than `MAX_TRAIL` goes on in the next row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from claw402.events.compact import Compact, Trail, limits_payload

_COLUMNS = frozenset({"type", "ts", "requestId", "tenantId", "correlationId"})
_NULLABLE = ("workerName", "limits", "status", "durationMs", "reason")
_SKIP_NULL = frozenset(_NULLABLE)
# Fields an earlier event of a row leaves out when they equal the row's own (its route's;
# the request and tenant ids too).
_SHARED = ("workerName", "limits")
MAX_TRAIL = 32  # events in one row at most: a longer trail goes on in the next row

# A row as the INSERT takes it: ts, type, request_id, tenant_id, data (JSON), steps,
# correlation_id.
Row = tuple[Any, ...]


def event_record(
    kind: str,
    ts: float,
    request_id: str | None,
    tenant_id: str | None,
    data: dict[str, Any],
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """An events row of one event as the record that was written (rows of any age: older
    ones hold the whole record in `data`)."""
    record = {
        "type": kind,
        "ts": ts,
        "requestId": request_id,
        "tenantId": tenant_id,
        **dict.fromkeys(_NULLABLE),
        **data,
    }
    if correlation_id is not None:
        record["correlationId"] = correlation_id
    return record


def row_events(
    kind: str,
    ts: float,
    request_id: str | None,
    tenant_id: str | None,
    data: dict[str, Any],
    correlation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every event an events row holds, in the order they happened; each carries the row's
    correlation id (the caller's x-request-id), if it had one."""
    before = data.get("before")
    if not before:
        return [event_record(kind, ts, request_id, tenant_id, data, correlation_id)]
    data = {k: v for k, v in data.items() if k != "before"}
    shared = {
        "requestId": request_id,
        "tenantId": tenant_id,
        **dict.fromkeys(_NULLABLE),
        **{k: data.get(k) for k in _SHARED},
    }
    if correlation_id is not None:
        shared["correlationId"] = correlation_id
    records = [{**shared, **step} for step in before]
    records.append(event_record(kind, ts, request_id, tenant_id, data, correlation_id))
    return records


def record_row(trail: Sequence[dict[str, Any]], correlation_id: str | None) -> Row:
    """The row of one request's events given as records (in order; one or more)."""
    *before, last = trail
    data = {
        k: v
        for k, v in last.items()
        if k not in _COLUMNS and (v is not None or k not in _SKIP_NULL)
    }
    steps = None
    if before:
        shared = {k: last.get(k) for k in _SHARED}
        shared["requestId"], shared["tenantId"] = last.get("requestId"), last.get("tenantId")
        data["before"] = [
            {
                k: v
                for k, v in e.items()
                if (v is not None or k not in _SKIP_NULL or k in shared)
                and not (k in shared and v == shared[k])
                and k != "correlationId"
            }
            for e in before
        ]
        steps = " " + " ".join(e["type"] for e in before) + " "
    return (
        last["ts"], last["type"], last.get("requestId"), last.get("tenantId"),
        orjson.dumps(data).decode(), steps, correlation_id,
    )  # fmt: skip


def compact_row(trail: Trail, correlation_id: str | None) -> Row:
    """`record_row` of the records a trail of compact tuples expands into, built straight
    from the tuples: the event writer's per-request cost (tests hold the two equal)."""
    last = trail[-1]
    kind, ts, request_id, tenant_id, worker, cpu_ms, sub_requests, *_ = last
    data: dict[str, Any] = {}
    if worker is not None:
        data["workerName"] = worker
    if cpu_ms is not None:
        data["limits"] = _limits_json(cpu_ms, sub_requests)
    _outcome(data, last)
    steps = None
    if len(trail) > 1:
        before = trail[:-1]
        data["before"] = [_compact_step(item, last) for item in before]
        steps = f" {' '.join([item[0] for item in before])} "
    return ts, kind, request_id, tenant_id, orjson.dumps(data).decode(), steps, correlation_id


def _compact_step(item: Compact, last: Compact) -> dict[str, Any]:
    """An earlier event of a row: the route's fields only where they differ from the row's."""
    step: dict[str, Any] = {"type": item[0], "ts": item[1]}
    if item[2] != last[2]:
        step["requestId"] = item[2]
    if item[3] != last[3]:
        step["tenantId"] = item[3]
    if item[4] != last[4]:
        step["workerName"] = item[4]
    if item[5] != last[5] or item[6] != last[6]:
        step["limits"] = None if item[5] is None else _limits_json(item[5], item[6])
    _outcome(step, item)
    return step


def _outcome(data: dict[str, Any], item: Compact) -> None:
    """Add a compact event's status, duration, reason and details, each only if set."""
    _, _, _, _, _, _, _, status, duration, reason, details, _ = item
    if status is not None:
        data["status"] = status
    if duration is not None:
        data["durationMs"] = round(duration, 3)
    if reason is not None:
        data["reason"] = reason
    if details:
        data["details"] = details


_LIMITS_JSON: dict[tuple[int, int], orjson.Fragment] = {}


def _limits_json(cpu_ms: int, sub_requests: int) -> orjson.Fragment:
    """A limits payload, JSON-encoded once per distinct limits: rows embed it as is."""
    found = _LIMITS_JSON.get((cpu_ms, sub_requests))
    if found is None:
        if len(_LIMITS_JSON) > 4096:  # overrides are per tenant: keep the table bounded
            _LIMITS_JSON.clear()
        payload = orjson.dumps(limits_payload(cpu_ms, sub_requests))
        found = _LIMITS_JSON[(cpu_ms, sub_requests)] = orjson.Fragment(payload)
    return found


def record_correlation(trail: Sequence[dict[str, Any]]) -> str | None:
    return next((e["correlationId"] for e in trail if e.get("correlationId")), None)


def compact_correlation(trail: Trail) -> str | None:
    for item in trail:  # the gateway puts it on the first event: one look, no generator
        if item[11] is not None:
            return item[11]
    return None


T = TypeVar("T")


def pieces(
    trails: Iterable[Sequence[T]], correlation: Callable[[Sequence[T]], str | None]
) -> Iterable[tuple[Sequence[T], str | None]]:
    """Each non-empty trail whole, or in pieces of `MAX_TRAIL`, with its correlation id (one
    event carries it; every piece's row keeps it)."""
    for trail in trails:
        if not trail:
            continue
        if len(trail) <= MAX_TRAIL:
            yield trail, correlation(trail)
        else:
            found = correlation(trail)
            for start in range(0, len(trail), MAX_TRAIL):
                yield trail[start : start + MAX_TRAIL], found
