"""The usage books: quotas (successful calls a day and a month) and the daily spend cap, in
the database every replica shares. A paying call takes its slots before the paywall runs
(one transaction: every counter moves by a conditional UPDATE or none does) and gives them
back if it is not served, so a bare 402 or a failed payment consumes nothing and a quota of
N allows exactly N across any number of gateways. A database that fails them raises
`BooksDown`: the limiter answers 503 rather than let a paying call through unbooked. A lock
held by another transaction is waited for `BOOKS_WAIT` at most (their own engine), so a stuck
writer turns paid calls into quick 503s instead of requests that hang."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from claw402.limits import windows
from claw402.limits.policy import Policy
from claw402.limits.schema import usage_counters
from claw402.registry.db import bounded_engine

BOOKS_WAIT = 5.0  # seconds a take or give-back waits for a row or database lock
QUOTA_DAY, QUOTA_MONTH, SPEND_DAY = "calls_day", "calls_month", "spend_day"


@dataclass(frozen=True, slots=True)
class Slot:
    counter: str
    window: str
    amount: int
    limit: int
    reset: datetime


@dataclass(frozen=True, slots=True)
class Refused:
    """The counter a call would take past its limit."""

    slot: Slot
    used: int


def slots(policy: Policy, now: datetime) -> list[Slot]:
    """What one paid call takes under `policy` at `now`."""
    taken: list[Slot] = []
    if policy.quota_day:
        label, reset = windows.day(now)
        taken.append(Slot(QUOTA_DAY, label, 1, policy.quota_day, reset))
    if policy.quota_month:
        label, reset = windows.month(now)
        taken.append(Slot(QUOTA_MONTH, label, 1, policy.quota_month, reset))
    if policy.spend_cap_day and policy.price_atomic > 0:
        label, reset = windows.day(now)
        taken.append(Slot(SPEND_DAY, label, policy.price_atomic, policy.spend_cap_day, reset))
    return taken


class BooksDown(RuntimeError):
    """The database could not take or give back a slot (locked past its busy timeout, a
    connection lost, a full disk). The transaction was rolled back, unless a commit's answer
    was what got lost: then a slot may stay taken, the safe side of a quota or cap."""

    @classmethod
    def of(cls, exc: SQLAlchemyError) -> BooksDown:
        """The driver's first line, without SQLAlchemy's statement and parameters."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first = (str(cause).strip().splitlines() or [""])[0]
        return cls(f"the usage books failed: {type(cause).__name__}: {first}")


class _Full(Exception):
    def __init__(self, refused: Refused) -> None:
        self.refused = refused


class UsageBooks:
    def __init__(self, engine: Engine, *, wait: float = BOOKS_WAIT) -> None:
        self.engine = bounded_engine(engine, wait)
        self._own = self.engine is not engine
        self._postgres = engine.dialect.name == "postgresql"

    def close(self) -> None:
        if self._own:
            self.engine.dispose()

    def take(self, tenant_id: str, wanted: list[Slot]) -> Refused | None:
        """Take every slot or none; the refused one (and its use) when one is full. Raises
        `BooksDown`."""
        try:
            with self.engine.begin() as conn:
                self._take(conn, tenant_id, wanted)
        except _Full as full:
            return full.refused
        except SQLAlchemyError as exc:
            raise BooksDown.of(exc) from exc
        return None

    def _take(self, conn: Connection, tenant_id: str, wanted: list[Slot]) -> None:
        for slot in wanted:  # always in the same order: no two calls wait on each other
            self._ensure(conn, tenant_id, slot)
            moved = conn.execute(
                update(usage_counters)
                .where(*_row(tenant_id, slot))
                .where(usage_counters.c.value + slot.amount <= slot.limit)
                .values(value=usage_counters.c.value + slot.amount)
            ).rowcount
            if moved != 1:
                used = conn.execute(
                    select(usage_counters.c.value).where(*_row(tenant_id, slot))
                ).scalar_one()
                raise _Full(Refused(slot, int(used)))  # rolls the others back

    def give_back(self, tenant_id: str, taken: list[Slot]) -> None:
        """Return what a call took and was not served for. Raises `BooksDown`."""
        try:
            with self.engine.begin() as conn:
                for slot in taken:
                    conn.execute(
                        update(usage_counters)
                        .where(*_row(tenant_id, slot))
                        .values(value=usage_counters.c.value - slot.amount)
                    )
        except SQLAlchemyError as exc:
            raise BooksDown.of(exc) from exc

    def used(self, tenant_id: str, counter: str, window: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(usage_counters.c.value).where(
                    usage_counters.c.tenant_id == tenant_id,
                    usage_counters.c.counter == counter,
                    usage_counters.c.window == window,
                )
            ).scalar()
        return int(found or 0)

    def _ensure(self, conn: Connection, tenant_id: str, slot: Slot) -> None:
        values = {"tenant_id": tenant_id, "counter": slot.counter, "window": slot.window,
                  "value": 0}  # fmt: skip
        if self._postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(usage_counters).values(**values).on_conflict_do_nothing())


def _row(tenant_id: str, slot: Slot) -> tuple[object, ...]:
    return (
        usage_counters.c.tenant_id == tenant_id,
        usage_counters.c.counter == slot.counter,
        usage_counters.c.window == slot.window,
    )
