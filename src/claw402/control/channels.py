"""Channel operations with who may perform them: listing the batch-settlement channels callers
opened, and claiming, settling or refunding them by hand (what the channel manager inside
`402claw serve` does on its own). All need `admin`; the three that move money are audited
under the actor's label with what they moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from claw402.control import audit
from claw402.control.authz import authorize
from claw402.control.keys import ADMIN

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from claw402.payments.channels.manager import Round
    from claw402.payments.config import PaymentConfig


def listing(engine: Engine, secret: str | None) -> list[dict[str, Any]]:
    """Every channel: payer, receiver, deposit, charged, claimed and its state."""
    from claw402.payments.channels.schema import payment_channels

    authorize(engine, secret, ADMIN)
    c = payment_channels.c
    with engine.connect() as conn:
        rows = conn.execute(select(payment_channels).order_by(c.receiver, c.channel_id)).mappings()
        return [_summary(dict(r)) for r in rows]


def claim(engine: Engine, secret: str | None, config: PaymentConfig) -> Round:
    return _run(engine, secret, config, "channels.claim", lambda m: m.claim())


def settle(engine: Engine, secret: str | None, config: PaymentConfig) -> Round:
    return _run(engine, secret, config, "channels.settle", lambda m: m.settle())


def refund(
    engine: Engine, secret: str | None, config: PaymentConfig, channel_ids: list[str] | None
) -> Round:
    return _run(engine, secret, config, "channels.refund", lambda m: m.refund(channel_ids))


def _run(engine: Engine, secret: str | None, config: PaymentConfig, action: str, job: Any) -> Round:
    from claw402.payments.channels.manager import ChannelManager
    from claw402.payments.channels.terms import ChannelSchemes

    actor = authorize(engine, secret, ADMIN)
    done: Round = job(ChannelManager(ChannelSchemes(config, engine)))
    moved = done.claims + done.settles + done.refunds
    if moved or done.errors:
        audit.record(engine, actor.label, action, details={
            "claims": done.claims, "settles": done.settles, "refunds": done.refunds,
            "booked": done.booked, "errors": done.errors,
        })  # fmt: skip
    return done


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    charged, claimed = int(r["charged_cumulative_amount"]), int(r["total_claimed"])
    if r["withdraw_requested_at"]:
        state = "withdrawing"
    elif r["pending_id"]:
        state = "busy"
    elif charged > claimed:
        state = "unclaimed"
    else:
        state = "open"
    return {
        "channel": r["channel_id"],
        "payer": r["payer"],
        "receiver": r["receiver"],
        "balance": r["balance"],
        "charged": r["charged_cumulative_amount"],
        "claimed": r["total_claimed"],
        "state": state,
    }
