"""The gateway's start-up hook: reconcile the books with the chain before serving.

A gateway that crashed between a settlement and its ledger write left money on chain that the
books miss; running `reconcile` at start posts it (claims older than the grace period only,
so a sibling gateway still mid-settle is left alone). It never stops the gateway from
starting: an unreachable RPC or a reset dev chain is logged, and `402claw reconcile` can be
run by hand later.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from sqlalchemy import Engine

log = logging.getLogger("claw402.ledger")
RPC_ENV = "CLAW402_RPC_URL"


def reconcile_at_start(engine: Engine, *, rpc_url: str, token: str, treasury: str) -> bool:
    """Run one reconcile; True if the books match the chain afterwards."""
    from claw402.ledger.chain import TokenChain
    from claw402.ledger.reconcile import reconcile

    try:
        report = reconcile(engine, TokenChain.connect(rpc_url, token), treasury, actor="gateway")
    except Exception as exc:
        log.warning("reconcile at start failed (the gateway starts anyway): %s", exc)
        return False
    if report.settlements or report.payouts_completed:
        log.warning(
            "reconcile at start recovered %d settlements and %d payouts the books missed",
            report.settlements,
            report.payouts_completed,
        )
    elif report.posted:
        log.info("reconcile at start booked %d treasury movements", report.posted)
    if not report.balanced:
        log.warning(
            "books and chain differ after reconcile: treasury %s on the books, %s on chain, "
            "%d deferred, problems: %s",
            report.ledger_treasury,
            report.chain_treasury,
            report.deferred,
            report.problems,
        )
    return report.balanced


def reconcile_from_env(
    engine: Engine, *, token: str, treasury: str, environ: Mapping[str, str] | None = None
) -> bool | None:
    """`reconcile_at_start` when `CLAW402_RPC_URL` is set; None when no chain is configured."""
    rpc_url = (os.environ if environ is None else environ).get(RPC_ENV, "").strip()
    if not rpc_url:
        return None
    return reconcile_at_start(engine, rpc_url=rpc_url, token=token, treasury=treasury)
