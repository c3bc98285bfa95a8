"""An HTTP answer as plain data, and the JSON answers every layer builds with one encoder.

Headers are kept as latin-1 byte pairs with lower-case names, the form ASGI servers take,
so a prepared answer (a 402 challenge) is a few list joins away from the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from claw402.dispatch.errors import error_body

RawHeaders = list[tuple[bytes, bytes]]


class Answer:
    """Status, headers and body of one answer; the body is whole (buffered) so a guard can
    decide to settle before a byte leaves. `rows` is how many data rows it carries (a page's
    or a record's), so a guard can charge by rows; None for any other answer."""

    __slots__ = ("body", "raw_headers", "rows", "status_code")

    def __init__(
        self,
        status_code: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        media_type: str | None = None,
        raw_headers: RawHeaders | None = None,
        rows: int | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.rows = rows
        self.raw_headers: RawHeaders = [] if raw_headers is None else raw_headers
        if headers:
            self.set_headers(headers)
        if media_type is not None:
            if media_type.startswith("text/") and "charset=" not in media_type:
                media_type += "; charset=utf-8"
            self.raw_headers.append((b"content-type", media_type.encode("latin-1")))

    @classmethod
    def prepared(cls, status_code: int, body: bytes, raw_headers: RawHeaders) -> Answer:
        """An answer from already-encoded parts (a prepared 402), without `__init__`'s work."""
        answer = cls.__new__(cls)
        answer.status_code, answer.body, answer.raw_headers = status_code, body, raw_headers
        answer.rows = None
        return answer

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        key = name.lower().encode("latin-1")
        for found, value in self.raw_headers:
            if found == key:
                return value.decode("latin-1")
        return None

    def set_headers(self, headers: Mapping[str, str]) -> None:
        """Set each header, replacing any value it had."""
        for name, value in headers.items():
            key = name.lower().encode("latin-1")
            self.raw_headers = [h for h in self.raw_headers if h[0] != key]
            self.raw_headers.append((key, value.encode("latin-1")))

    def header_items(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers]

    def json(self) -> Any:
        return orjson.loads(self.body)


def json_answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, orjson.dumps(body), headers, media_type="application/json")


def error_answer(
    status: int,
    code: str,
    request_id: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> Answer:
    """The error shape every runtime shares (`ok`, `error`, `requestId`, `detail`), plus
    `fields` (a 402's `accepts`, a pending payment's transaction)."""
    body = error_body(code, request_id, detail)
    body.update(fields)
    return json_answer(body, status, headers)


def html_answer(text: str) -> Answer:
    return Answer(200, text.encode(), media_type="text/html")
