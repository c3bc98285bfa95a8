"""A local stand-in for api.cloudflare.com that records every request (the SDK's `base_url`).

Answers come from a queue (status, body, headers), else from `responder` (a function of the
recorded request: cfstate.py keeps an account's state), else Cloudflare's success envelope;
multipart bodies are parsed so tests can assert each part and the metadata.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    content: bytes


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    parts: list[Part] = field(default_factory=list)

    def part(self, filename: str) -> Part:
        return next(p for p in self.parts if p.filename == filename)

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(next(p for p in self.parts if p.name == "metadata").content)


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = []
    for sub in message.iter_parts():
        parts.append(
            Part(
                name=sub.get_param("name", header="content-disposition"),
                filename=sub.get_filename(),
                content_type=sub.get_content_type(),
                content=sub.get_payload(decode=True),
            )
        )
    return parts


def success(result: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        200,
        {
            "success": True,
            "errors": [],
            "messages": [],
            "result": result or {"id": "script-id", "etag": "etag-1"},
        },
        {},
    )


def failure(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        status,
        {
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        },
        headers or {},
    )


class FakeCloudflare:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.answers: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self.responder: Callable[[Recorded], tuple[int, dict[str, Any], dict[str, str]]] | None
        self.responder = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                ctype = self.headers.get("content-type", "")
                parts = parse_multipart(ctype, body) if ctype.startswith("multipart/") else []
                recorded = Recorded(self.command, self.path, dict(self.headers), body, parts)
                fake.requests.append(recorded)
                if fake.answers:
                    status, payload, headers = fake.answers.popleft()
                elif fake.responder is not None:
                    status, payload, headers = fake.responder(recorded)
                elif self.command == "GET" and self.path.split("?")[0].endswith("/workers/scripts"):
                    # the account's scripts: none yet (what a migration-tag read sees first)
                    status, payload, headers = (
                        200,
                        {"success": True, "errors": [], "messages": [], "result": []},
                        {},
                    )
                else:
                    status, payload, headers = success()
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/client/v4"

    def __enter__(self) -> FakeCloudflare:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
