"""The gateway's request path is its list of steps: a step added there applies to every
request, the replayed 402s included, and reports itself in the request's last event."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gwpriced import count_guarded, priced_gateway

from claw402.events.store import EventStore
from claw402.gateway.steps import GatewayCall, GuardStep, LimitsStep, ResolveStep, RunStep
from claw402.tenant_api.answer import Answer, error_answer
from claw402.tenant_api.call import Pipeline


class Quota:
    """A step issue 22 could add: the first `allowed` calls pass, the rest get 429."""

    name = "quota"

    def __init__(self, allowed: int) -> None:
        self.left = allowed

    async def __call__(self, call: GatewayCall) -> Answer:
        if self.left <= 0:
            return error_answer(429, "quota_exceeded", call.request_id)
        self.left -= 1
        return await call.next()


def last_events(registry: Any, request_ids: list[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        events = EventStore(registry.engine).read_events(limit=1000)
        last = [[e for e in events if e["requestId"] == rid and e["type"].startswith("dispatch_")
                 and e["type"] != "dispatch_start"] for rid in request_ids]  # fmt: skip
        if all(last) or time.monotonic() > deadline:
            return [found[-1] for found in last]
        time.sleep(0.02)


def test_a_step_added_to_the_list_applies_to_replays_too(tmp_path: Path) -> None:
    with priced_gateway(tmp_path) as (_, registry, gateway, client):
        gateway.steps = Pipeline(
            [ResolveStep(gateway), LimitsStep(), Quota(2), GuardStep(gateway), RunStep()]
        )
        guarded = count_guarded(gateway)
        answers = [client.get("/t/cities/v1/records") for _ in range(3)]
        assert [r.status_code for r in answers] == [402, 402, 429]
        assert len(guarded) == 1  # the second 402 was a replay, and still went through the quota
        assert answers[2].json()["error"] == "quota_exceeded"
        last = last_events(registry, [r.headers["x-request-id"] for r in answers])
        assert [e["details"]["steps"] for e in last] == [
            ["resolve", "limits", "quota", "guard"],
            ["resolve", "limits", "quota", "guard"],
            ["resolve", "limits", "quota"],
        ]
