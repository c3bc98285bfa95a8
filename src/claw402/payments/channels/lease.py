"""`Lease`: at most one holder of a named job among every process on one database.

Two `402claw serve` (or `dev`) processes on one database would both claim and settle the
same channels: duplicate chain transactions, the second of which reverts or claims nothing.
So the channel manager's loop runs only while its process holds the `channel-manager`
lease: a row of `ledger_leases` (name, holder, expires_at; the payout runner's table), taken
with one conditional UPDATE (free, ours, or expired) after making sure the row exists. The
holder renews it before every round; a holder that dies stops renewing and the lease is
taken over once it expired; a holder that stops cleanly releases it at once. Expiry is in
the wall-clock time of the processes' hosts, so their clocks must agree to well within
`seconds`.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import Engine, or_, update

from claw402.clock import now
from claw402.ledger.db import insert_ignore
from claw402.ledger.schema import ledger_leases

__all__ = ["Lease"]

_L = ledger_leases.c


class Lease:
    def __init__(self, engine: Engine, name: str, seconds: float, holder: str | None = None):
        if seconds <= 0:
            raise ValueError("a lease must last a positive number of seconds")
        self.engine = engine
        self.name = name
        self.seconds = seconds
        self.holder = holder or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"

    def acquire(self) -> bool:
        """Take or renew the lease: True if this holder has it for `seconds` from now."""
        moment = now()
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, ledger_leases), {"name": self.name})
            taken = conn.execute(
                update(ledger_leases)
                .where(
                    _L.name == self.name,
                    or_(_L.holder.is_(None), _L.holder == self.holder, _L.expires_at < moment),
                )
                .values(holder=self.holder, expires_at=moment + timedelta(seconds=self.seconds))
            ).rowcount
        return taken == 1

    def release(self) -> None:
        """Give it up now (if held), so another process takes over without waiting."""
        with self.engine.begin() as conn:
            conn.execute(
                update(ledger_leases)
                .where(_L.name == self.name, _L.holder == self.holder)
                .values(holder=None, expires_at=None)
            )
