"""One call to a tenant's data API and the steps it goes through.

The request path is an ordered list of named steps (the gateway's `resolve`, `limits`,
`guard`, `run`; the dispatch Worker follows the same list). A step either answers or hands
the call on with `await call.next()`, so a step can also wrap the rest (the guard runs the
query only once a payment is verified). The replay shortcut goes through the same steps, and
the steps a call passed are reported in its last lifecycle event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol
from urllib.parse import parse_qsl

from claw402.dispatch.plans import Limits
from claw402.dispatch.routing import TenantRoute
from claw402.events.compact import Trail
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer

# The routes a priced tenant sells; every other route is free (documents, errors).
RECORDS = "/v1/records"


def paid_route(method: str, path: str) -> bool:
    return (method == "GET" or method == "HEAD") and (
        path == RECORDS or path.startswith("/v1/records/")
    )


class TenantFailure(Exception):
    """The tenant's handler or data failed: the dispatcher answers 502 tenant_worker_failure."""


class Replayable(Protocol):
    """An answer a guard gives every request to one resource that `applies` to (the 402
    challenge of an unpaid call): a runtime may keep it and answer the next such requests
    from it, through the same steps, without routing or guarding again."""

    def applies(self, method: str, headers: dict[str, str]) -> bool: ...

    def answer(self, request_id: str, trail: Trail) -> Answer:
        """The answer for one request, its events appended to `trail`."""
        ...


Produce = Callable[[], Awaitable[Answer]]
# The paywall: given a paid call and a producer of its buffered answer, returns the answer
# (a 402 challenge, the data with a receipt, or a payment error). It calls `produce` at most once.
Guard = Callable[["TenantCall", Produce], Awaitable[Answer]]


class Step(Protocol):
    name: str

    async def __call__(self, call: TenantCall) -> Answer: ...


class Pipeline:
    """A runtime's steps in order; adding a step (a rate limit, a quota) is one entry."""

    __slots__ = ("names", "steps")

    def __init__(self, steps: Sequence[Step]) -> None:
        # Bound `__call__`s: called directly, without the instance-call slot lookup.
        self.steps: tuple[Callable[[TenantCall], Awaitable[Answer]], ...] = tuple(
            step.__call__ for step in steps
        )
        self.names = tuple(step.name for step in steps)


class TenantCall:
    """A request to one tenant, as every step and the guard see it. A runtime subclasses it
    with what its own steps keep; `route`, `tenant`, `path` and `root_url` are set by the
    resolve step, `limits` and `page_cap` by the limits step."""

    __slots__ = (
        "_at",
        "_names",
        "_steps",
        "books_kept",
        "headers",
        "invalid",
        "limits",
        "method",
        "page_cap",
        "path",
        "payment",
        "query",
        "query_string",
        "replayable",
        "request_id",
        "root_url",
        "route",
        "tenant",
        "trail",
    )
    route: TenantRoute
    tenant: Tenant
    path: str  # the path the tenant sees, prefix stripped
    root_url: str  # the tenant's public root, e.g. http://host/t/acme
    limits: Limits
    page_cap: int  # the largest page this call may ask for (`dispatch.plans.max_page_size`)

    def __init__(
        self,
        pipeline: Pipeline,
        method: str,
        headers: dict[str, str],
        query_string: bytes,
        request_id: str,
        trail: Trail,
    ) -> None:
        self._steps = pipeline.steps
        self._names = pipeline.names
        self._at = 0
        self.method = method
        self.headers = headers  # lower-case names, first value wins
        self.query_string = query_string
        self.request_id = request_id
        self.trail = trail  # this request's events, written when it ends
        self.replayable: Replayable | None = None  # set by a guard whose answer any such call gets
        # A paid route's 400 known before payment (an invalid query): the guard answers it to a
        # paying call instead of verifying the payment; an unpaid call still gets the 402.
        self.invalid: Answer | None = None
        self.query: object = None  # the parsed query, once a runtime checked it
        self.payment: object = None  # the decoded payment header, once a step decoded it
        self.books_kept: str | None = None  # why usage slots it took were not given back

    def next(self) -> Awaitable[Answer]:
        """The answer of the rest of the steps (the next step's own awaitable: no coroutine
        of its own, as this runs once per step of every request)."""
        at = self._at
        self._at = at + 1
        return self._steps[at](self)

    @property
    def steps_passed(self) -> tuple[str, ...]:
        return self._names[: self._at]

    @property
    def resource_url(self) -> str:
        return self.root_url + self.path

    def query_items(self) -> list[tuple[str, str]]:
        """The query string's parameters in order, blanks kept (as Starlette reads them)."""
        return parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True)
