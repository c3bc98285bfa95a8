"""An HTTP proxy in front of the real facilitator that can lose a `/settle` (a test helper).

`settle` says what happens to the next settles: "pass" (forwarded, answered), "drop_reply"
(forwarded: the facilitator broadcasts and answers, and the proxy closes the connection
without a word, as a network cut after broadcast), or "drop_request" (the connection is
closed before anything is forwarded, as a cut before broadcast). `counts` holds the requests
received per path, so a test can see whether a call cost a verify.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from types import TracebackType

import httpx

PASS, DROP_REPLY, DROP_REQUEST = "pass", "drop_reply", "drop_request"
_FORWARDED = ("content-type", "authorization")


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.settle = PASS
        self.counts: Counter[str] = Counter()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        self._ready.set()
        self._loop.run_forever()

    async def _open(self) -> None:
        self._http = httpx.AsyncClient(timeout=30)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readline():
                method, target, _ = request.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = target.split("?", 1)[0]
                self.counts[path] += 1
                mode = self.settle if path.endswith("/settle") else PASS
                if mode == DROP_REQUEST:
                    return
                answer = await self._http.request(
                    method,
                    self.upstream + target,
                    content=body,
                    headers={k: v for k, v in headers.items() if k in _FORWARDED},
                )
                if mode == DROP_REPLY:
                    return
                content = answer.content
                head = (
                    f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}\r\n"
                    f"content-type: {answer.headers.get('content-type', 'application/json')}\r\n"
                    f"content-length: {len(content)}\r\n\r\n"
                )
                writer.write(head.encode("latin-1") + content)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly, the loop is closing
            pass
        finally:
            writer.close()

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("fault proxy did not start")
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:  # keep-alive connections waiting for their next request
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._http.aclose()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
