"""Run an ASGI app on uvicorn in a background thread: for `402claw dev`, the demo and tests.

`port=0` binds a free port; the real one is read back from the bound socket, so callers
never race for ports.
"""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from claw402.lifecycle import Stops


class ServerThread(Stops):
    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any loopback
        # peer as the client; the gateway decides that (CLAW402_TRUSTED_PROXIES).
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="auto",
            proxy_headers=False,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, name="claw402-server", daemon=True)
        self._error: BaseException | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def start(self, timeout: float = 15.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.005)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()
