"""`402claw facilitator serve`: the x402 facilitator for one EVM chain."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from claw402.cli.options import Home
from claw402.cli.output import fail

DEFAULT_PORT = 4020

app = typer.Typer(help="The x402 facilitator (/supported, /verify, /settle).", no_args_is_help=True)


@app.command("serve")
def serve_command(
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="JSON-RPC endpoint of the chain.")],
    private_key_env: Annotated[
        str, typer.Option("--private-key-env", help="Env var with the gas-paying key.")
    ],
    network: Annotated[str, typer.Option(help="CAIP-2 network, e.g. eip155:31337.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = DEFAULT_PORT,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Env var with a required API key.")
    ] = None,
    authorizer_key_env: Annotated[
        str | None,
        typer.Option(
            "--authorizer-key-env",
            help="Env var with the key that signs batch-settlement claims and refunds "
            "(default: the gas-paying key).",
        ),
    ] = None,
    home: Home = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Where the Bazaar discovery catalogue is kept (SQLAlchemy URL, e.g. "
            "postgresql://...; env CLAW402_FACILITATOR_DATABASE_URL; default: "
            "facilitator.sqlite3 in the home).",
        ),
    ] = None,
) -> None:
    """Verify and settle x402 `exact` and `batch-settlement` payments on one chain."""
    from claw402.config import resolve_home
    from claw402.facilitator.catalogue_store import (
        DATABASE_URL_ENV,
        CatalogueSchemaError,
        default_database_url,
    )
    from claw402.facilitator.server import serve  # the x402 SDK and web3: slow imports
    from claw402.facilitator.settings import FacilitatorSettings, SettingsError

    url = database_url or os.environ.get(DATABASE_URL_ENV) or None
    try:
        settings = FacilitatorSettings.from_env(
            rpc_url=rpc_url,
            private_key_env=private_key_env,
            network=network,
            api_key_env=api_key_env,
            authorizer_key_env=authorizer_key_env,
            database_url=url or default_database_url(resolve_home(home)),
        )
        serve(settings, host, port)
    except (SettingsError, CatalogueSchemaError) as exc:
        fail(str(exc))
