"""`402claw serve`: the self-hosted gateway on granian.

granian parses and writes HTTP in Rust, off the Python thread: on the 402 challenge path it
serves ~1.7x what uvicorn does with the same app (bench/bench_paid_call.py --server). Its
workers (`--workers`, one per core by default: one Python process holds one core) are child
processes that import the app factory and share the listening socket, so everything the
gateway needs travels through the environment. What must happen once per `serve` happens here,
before they start: the migration, the reconcile at start, and the channel manager (claims and
settles of batch-settlement vouchers) on a thread of this process, whatever the workers.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Annotated

import typer

from claw402.cli.options import Home

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# Seconds a stopping worker gets to finish (its event writer drains within 10): a worker that
# does not stop is killed, so serve itself always exits.
KILL_AFTER = 20


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8402,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar="CLAW402_PUBLIC_URL",
            help="The gateway's address as callers see it, e.g. https://api.example.com: "
            "the root of 402 resource URLs and OpenAPI servers, and a name no tenant may "
            "claim (else CLAW402_PUBLIC_URL).",
            show_envvar=False,
        ),
    ] = None,
    home: Home = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            help="DuckDB memory per worker for every dataset it serves, e.g. 256MB (default "
            "192MB; else CLAW402_MEMORY_LIMIT): past it, sorts spill to disk.",
        ),
    ] = None,
    open_datasets: Annotated[
        int | None,
        typer.Option(
            "--open-datasets",
            help="Dataset versions a worker keeps attached, least recently used detached "
            "first (default 64; else CLAW402_OPEN_DATASETS).",
        ),
    ] = None,
    page_cache: Annotated[
        str | None,
        typer.Option(
            "--page-cache",
            help="Memory per worker for answered pages of every tenant, least recently used "
            "dropped first, e.g. 64MB (default 32MB; else CLAW402_PAGE_CACHE).",
        ),
    ] = None,
    runtimes: Annotated[
        int | None,
        typer.Option(
            "--runtimes",
            help="Tenant runtimes a worker keeps, least recently used dropped first (default "
            "16384; else CLAW402_RUNTIMES).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help=f"Server log level: {', '.join(LOG_LEVELS)}.")] = (
        "warning"
    ),
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: the number of cores).", min=1, max=256),
    ] = None,
) -> None:
    """Serve every tenant from one process; deploys and removals are live without a restart.

    With a payment network it also runs the channel manager: batch-settlement vouchers are
    claimed every CLAW402_CHANNEL_CLAIM_SECONDS and settled every
    CLAW402_CHANNEL_SETTLE_SECONDS.
    """
    from sqlalchemy.exc import OperationalError

    from claw402.config import load_settings
    from claw402.dispatch.naming import InvalidName, check_public_url
    from claw402.payments.config import PaymentConfigError, payment_config_from_env
    from claw402.registry.store import Registry

    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"choose one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    if public_url:
        try:
            public_url = check_public_url(public_url)
        except InvalidName as exc:
            raise typer.BadParameter(str(exc), param_hint="--public-url") from None
        os.environ["CLAW402_PUBLIC_URL"] = public_url  # the worker builds its app from the env
    _engine_budget(memory_limit, open_datasets, page_cache)
    _runtimes(runtimes)
    settings = load_settings(home)
    try:  # fail here with a message, not as a worker's traceback; migrate once, up front
        payments = payment_config_from_env(os.environ)
        registry = Registry.open(settings)
    except PaymentConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OperationalError as exc:
        typer.echo(f"error: cannot open the registry database: {exc.orig}", err=True)
        raise typer.Exit(2) from None
    if port == 0:
        port = _free_port(host)
    os.environ["CLAW402_HOME"] = str(settings.home)
    shown = f" (public URL {public_url})" if public_url else ""
    workers = workers or os.cpu_count() or 1
    typer.echo(f"402claw gateway on http://{host}:{port}{shown}, {workers} workers", err=True)
    manager = None
    if payments is not None:  # once per `serve`, beside granian's workers
        from claw402.ledger.startup import reconcile_from_env
        from claw402.payments.channels.manager import ChannelManager
        from claw402.payments.channels.terms import ChannelSchemes

        reconcile_from_env(registry.engine, token=payments.asset, treasury=payments.treasury)
        manager = ChannelManager(ChannelSchemes(payments, registry.engine)).start()
    metrics_dir = _metrics_dir(workers)
    try:
        _serve(host, port, log_level, workers)
    finally:
        if manager is not None:
            manager.stop()
        registry.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir(workers: int) -> str | None:
    """With several workers, a private folder where each writes its `/metrics` values
    (prometheus_client's multiprocess mode), so any worker's page adds them all up. Set
    before a worker imports prometheus_client, which reads it once."""
    if workers < 2:
        return None
    folder = tempfile.mkdtemp(prefix="claw402-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # not imported from gateway.metrics: see above
    return folder


def _engine_budget(
    memory_limit: str | None, open_datasets: int | None, page_cache: str | None = None
) -> None:
    """Check the datasets budget here, and hand it to the workers through the environment."""
    from claw402.datasets.budget import ENV_CACHE, ENV_MEMORY, ENV_OPEN, Budget, parse_size

    if memory_limit is not None:
        os.environ[ENV_MEMORY] = memory_limit
    if open_datasets is not None:
        if open_datasets <= 0:
            raise typer.BadParameter("must be a positive integer", param_hint="--open-datasets")
        os.environ[ENV_OPEN] = str(open_datasets)
    if page_cache is not None:
        try:
            parse_size(page_cache)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--page-cache") from None
        os.environ[ENV_CACHE] = page_cache
    try:
        Budget.from_env(os.environ)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory-limit") from None


def _runtimes(runtimes: int | None) -> None:
    """Check the runtime cache's size (given or from the environment) here, not in a worker."""
    from claw402.gateway.runtimes import ENV_RUNTIMES, runtimes_from_env

    if runtimes is not None:
        os.environ[ENV_RUNTIMES] = str(runtimes)
    try:
        runtimes_from_env(os.environ)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--runtimes") from None


def _serve(host: str, port: int, log_level: str, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    Granian(
        "claw402.gateway.server:app_from_env",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        workers_kill_timeout=KILL_AFTER,
        loop=Loops.auto,  # uvloop where installed
        log_level=LogLevels(log_level),
        log_access=False,
    ).serve()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
