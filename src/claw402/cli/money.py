"""Money commands: balance, withdraw, wallet verify, payouts, reconcile.

Thin: each parses its options, calls its operation in `claw402.control.money` (which
decides who may, and audits) and prints. Chain access (`reconcile`, `payouts run`) reads
`--rpc-url`/`CLAW402_RPC_URL`, `--token`/`CLAW402_ASSET` and `--treasury`/`CLAW402_TREASURY`,
else what a `402claw dev` running with the same home publishes (`cli.devfile`), the
treasury's key included.

The ledger and control layers are imported by the commands that run, not here: every `402claw`
invocation imports this module to build its command list.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from claw402.cli import devfile
from claw402.cli.auth import ApiKey
from claw402.cli.options import Home, Json, session
from claw402.cli.output import console, emit_json, err_console, fail

DEV = " (else a running `402claw dev`'s)"
RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="CLAW402_RPC_URL",
        help="JSON-RPC URL of the chain" + DEV + ".",
        show_default=False,
    ),
]
TokenAddress = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="CLAW402_ASSET", help="USDC token address" + DEV + ".", show_default=False
    ),
]
TreasuryAddress = Annotated[
    str | None,
    typer.Option(
        "--treasury",
        envvar="CLAW402_TREASURY",
        help="Treasury address" + DEV + ".",
        show_default=False,
    ),
]
TREASURY_KEY_ENV = "CLAW402_TREASURY_KEY"


class ChainFlags:
    """The chain flags as given (flag, else environment), else a running dev stack's."""

    def __init__(
        self, home: str | None, rpc_url: str | None, token: str | None, treasury: str | None
    ) -> None:
        self.home = home
        self.dev = devfile.running(home)
        self.rpc_url = rpc_url or (self.dev and self.dev.rpc_url)
        self.token = token or (self.dev and self.dev.token)
        self.treasury = treasury or (self.dev and self.dev.treasury)

    def treasury_key(self, private_key_env: str | None, json: bool) -> tuple[str, str]:
        """The treasury's key and where it came from: the variable, else (when none was
        named) the running dev stack's key file."""
        name = private_key_env or TREASURY_KEY_ENV
        key = os.environ.get(name)
        if not key and private_key_env is None and self.dev is not None:
            key = self.dev.treasury_key(self.home)
            name = f"{devfile.KEY_FILE} of the running `402claw dev`"
        if not key:
            fail(
                f"environment variable {name} (the treasury's key) is not set",
                as_json=json,
                code="no_treasury_key",
            )
        return key, name


wallet_app = typer.Typer(help="Payout wallets.", no_args_is_help=True)
payouts_app = typer.Typer(help="Pay withdrawals on chain.", no_args_is_help=True)


def _usd(atomic: int) -> str:
    from claw402.ledger.amounts import atomic_to_usd

    return f"${atomic_to_usd(atomic)}"


def balance_command(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """A creator's money: earned, platform fees, pending withdrawals, channel earnings claimed
    and not yet claimed, available."""
    from rich.table import Table

    from claw402.control import money

    with session(home, json) as (_, registry):
        found, b = money.balance(registry, api_key, tenant)
    if json:
        emit_json({"ok": True, "tenant": found.slug, "balance": b.to_json()})
        return
    table = Table(title=f"{found.slug}: fee {b.fee_bps / 100:g}% per paid call", show_header=False)
    rows = [
        ("earned (gross)", b.earned),
        ("platform fees", b.fees),
        ("pending withdrawals", b.pending),
        ("withdrawn", b.withdrawn),
        ("available", b.available),
    ]
    if b.paid_direct or b.fees_due:
        rows[1:1] = [("paid to your wallet directly", b.paid_direct), ("fees owed", b.fees_due)]
    if b.unclaimed or b.claimed:  # channel (batch-settlement) earnings
        rows[-1:-1] = [
            ("channels: claimed", b.claimed),
            ("channels: not yet claimed (not withdrawable)", b.unclaimed),
        ]
    for label, amount in rows:
        table.add_row(label, _usd(amount))
    console.print(table)


@wallet_app.command("verify")
def wallet_verify_command(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
    address: Annotated[str, typer.Option("--address", help="Payout address (0x...).")],
    signature: Annotated[
        str | None,
        typer.Option("--signature", help="EIP-191 signature of the printed challenge."),
    ] = None,
    private_key_env: Annotated[
        str | None,
        typer.Option("--private-key-env", help="Sign locally with the key in this variable."),
    ] = None,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Prove you control --address: without --signature, print the challenge to sign."""
    from claw402.control import money

    key = None
    if private_key_env:
        key = os.environ.get(private_key_env)
        if not key:
            fail(f"environment variable {private_key_env} is not set", as_json=json)
    with session(home, json) as (_, registry):
        step = money.verify_wallet(
            registry, api_key, tenant, address, signature=signature, private_key=key
        )
    found, challenge, proved = step.tenant, step.challenge, step.proved
    if proved is None:
        if json:
            emit_json(
                {
                    "ok": True,
                    "challenge": challenge.message,
                    "address": challenge.address,
                    "expiresAt": challenge.expires_at.isoformat(),
                }
            )
            return
        console.print(challenge.message, highlight=False)
        err_console.print(
            "sign the text above with this address (EIP-191 personal_sign), then run "
            "again with --signature 0x..."
        )
        return
    if json:
        emit_json(
            {
                "ok": True,
                "tenant": found.slug,
                "address": proved.address,
                "previous": proved.previous,
            }
        )
    else:
        change = f" (was {proved.previous})" if proved.previous else ""
        console.print(
            f"[green]verified[/] {proved.address} receives {found.slug}'s payouts{change}"
        )


def withdraw_command(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
    amount: Annotated[str, typer.Option("--amount", help="USD, e.g. 12.50.")],
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Reserve --amount of the available balance for a payout to the verified wallet."""
    from claw402.control import money

    with session(home, json) as (_, registry):
        _, w = money.withdraw(registry, api_key, tenant, amount)
    if json:
        emit_json({"ok": True, "withdrawal": w.to_json()})
    else:
        console.print(
            f"[green]withdrawal {w.id}[/] of {_usd(w.amount)} to {w.address} is pending "
            "(paid by the next `402claw payouts run`)"
        )


def _chain(rpc_url: str | None, token: str | None, json: bool) -> Any:
    if not rpc_url or not token:
        fail(
            "set --rpc-url (or CLAW402_RPC_URL) and --token (or CLAW402_ASSET), or run "
            "`402claw dev` with this home",
            as_json=json,
            code="chain_not_configured",
        )
    from claw402.ledger.chain import TokenChain

    try:
        chain = TokenChain.connect(rpc_url, token)
    except Exception as exc:
        fail(f"cannot reach the chain at {rpc_url}: {exc}", as_json=json, code="rpc_unreachable")
    network = os.environ.get("CLAW402_NETWORK")
    if network and network != chain.network:
        fail(
            f"{rpc_url} is {chain.network}, CLAW402_NETWORK says {network}",
            as_json=json,
            code="wrong_network",
        )
    return chain


@payouts_app.command("run")
def payouts_run_command(
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Pay at most this many.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, send nothing.")] = False,
    rpc_url: RpcUrl = None,
    token: TokenAddress = None,
    treasury: TreasuryAddress = None,
    private_key_env: Annotated[
        str | None,
        typer.Option(
            "--private-key-env",
            help=f"Variable holding the treasury's key (default {TREASURY_KEY_ENV})" + DEV + ".",
            show_default=False,
        ),
    ] = None,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Pay pending withdrawals in order; first settles any transfer a crash left unconfirmed."""
    from rich.table import Table

    from claw402.control import money

    def connect() -> money.Treasury:
        flags = ChainFlags(home, rpc_url, token, treasury)
        key, key_source = flags.treasury_key(private_key_env, json)
        chain = _chain(flags.rpc_url, flags.token, json)
        return money.Treasury(chain, key, key_source, flags.treasury)

    with session(home, json) as (_, registry):
        report = money.run_payouts(
            registry.engine, api_key, limit=limit, dry_run=dry_run, treasury=connect
        )
    if json:
        emit_json({"ok": True, **report.to_json()})
        return
    if not report.results:
        console.print("no withdrawals to pay")
    table = Table("id", "tenant", "amount", "to", "status", "tx / reason")
    for r in report.results:
        table.add_row(
            str(r.withdrawal_id),
            r.tenant_id,
            _usd(r.amount),
            r.address,
            r.status,
            r.reason or r.tx_hash or "-",
        )
    if report.results:
        console.print(table)
    if report.stopped:
        err_console.print(f"stopped: {report.stopped}")


@payouts_app.command("list")
def payouts_list_command(
    status: Annotated[str | None, typer.Option("--status", help="pending, sending, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """List withdrawals, oldest first."""
    from rich.table import Table

    from claw402.control import money

    with session(home, json) as (_, registry):
        rows = money.list_withdrawals(registry.engine, api_key, status=status, limit=limit)
    if json:
        emit_json({"ok": True, "withdrawals": [w.to_json() for w in rows]})
        return
    table = Table("id", "tenant", "amount", "to", "status", "tx / reason", "requested by")
    for w in rows:
        table.add_row(
            str(w.id),
            w.tenant_id,
            _usd(w.amount),
            w.address,
            w.status,
            w.reason or w.tx_hash or "-",
            w.requested_by,
        )
    console.print(table)


def reconcile_command(
    rpc_url: RpcUrl = None,
    token: TokenAddress = None,
    treasury: TreasuryAddress = None,
    from_block: Annotated[
        int, typer.Option("--from-block", min=0, help="First run only: where to start.")
    ] = 0,
    grace_seconds: Annotated[
        float, typer.Option("--grace-seconds", min=0, help="Leave younger claims to the gateway.")
    ] = 120.0,
    api_key: ApiKey = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Post every treasury movement and settlement the books miss; compare with the chain."""
    from claw402.control import money

    def connect() -> tuple[Any, str]:
        flags = ChainFlags(home, rpc_url, token, treasury)
        if not flags.treasury:
            fail(
                "set --treasury (or CLAW402_TREASURY), or run `402claw dev` with this home",
                as_json=json,
                code="chain_not_configured",
            )
        return _chain(flags.rpc_url, flags.token, json), flags.treasury

    with session(home, json) as (_, registry):
        report = money.reconcile(
            registry.engine, api_key, connect, from_block=from_block, grace_seconds=grace_seconds
        )
    if json:
        emit_json({"ok": report.balanced, **report.to_json()})
    else:
        console.print(
            f"blocks {report.from_block}-{report.to_block}: {report.settlements} settlements, "
            f"{report.payouts_completed} payouts completed, {report.deposits} deposits, "
            f"{report.outflows} other outflows, {report.unattributed} unattributed, "
            f"{report.deferred} deferred, {report.edge_settlements} from the edge "
            f"({report.edge_direct} paid to creators' own wallets), "
            f"{report.released} unused claims released"
        )
        state = "[green]balanced[/]" if report.balanced else "[bold red]NOT balanced[/]"
        console.print(
            f"treasury: books {_usd(report.ledger_treasury)}, chain "
            f"{_usd(report.chain_treasury)}: {state}"
        )
        for warning in report.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        for problem in report.problems:
            err_console.print(f"[bold red]problem:[/] {problem}", highlight=False)
    if report.problems or (not report.balanced and not report.deferred):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("balance")(balance_command)
    app.command("withdraw")(withdraw_command)
    app.command("reconcile")(reconcile_command)
    app.add_typer(wallet_app, name="wallet")
    app.add_typer(payouts_app, name="payouts")
