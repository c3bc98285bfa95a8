"""Run the facilitator on uvicorn: in the foreground (`serve`) or on a background thread."""

from __future__ import annotations

import uvicorn

from claw402.facilitator.app import create_app
from claw402.facilitator.settings import FacilitatorSettings
from claw402.serving import ServerThread

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4020


def serve(
    settings: FacilitatorSettings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT/SIGTERM. Raises before binding if the RPC serves another chain."""
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, lifespan="off")


def background_server(
    settings: FacilitatorSettings, host: str = DEFAULT_HOST, port: int = 0
) -> ServerThread:
    """A not-yet-started server thread: `with background_server(s) as server: server.url`.

    The app is built (and the RPC checked) here; `port=0` binds a free port on start.
    """
    return ServerThread(create_app(settings), host=host, port=port)
