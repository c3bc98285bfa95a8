"""`402claw serve`: the self-hosted gateway on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from claw402.cli.options import Home
from claw402.config import load_settings


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8402,
    home: Home = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve every tenant from one process; deploys and removals are live without a restart."""
    import uvicorn

    from claw402.gateway.server import build_app, tune_gc

    app = build_app(load_settings(home))
    tune_gc()
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
