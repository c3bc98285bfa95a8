"""A minimal JSON-RPC client for the chain: one keep-alive connection, no middleware.

web3's provider stack costs ~1 ms of Python per call (and its contract layer re-parses
the ABI and re-validates the chain id on every `call`): more than the call itself on a
local node. The facilitator only needs a handful of methods, so it speaks JSON-RPC itself.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import httpx


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error (a revert, a rejected transaction, ...)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class JsonRpc:
    """Thread-safe: httpx pools connections; ids only need to be unique per connection."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, method: str, *params: Any) -> Any:
        """The `result` of `method(params)`; raises `RpcError` or an `httpx.TransportError`."""
        with self._lock:
            request_id = next(self._ids)
        response = self._client.post(
            self.url,
            json={"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)},
        )
        response.raise_for_status()
        body = response.json()
        error = body.get("error")
        if error is not None:
            raise RpcError(
                int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
            )
        return body.get("result")

    def close(self) -> None:
        self._client.close()
