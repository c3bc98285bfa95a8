"""JSON answers with one encoder (orjson) and the error shape every layer shares."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from claw402.dispatch.errors import error_body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(
    status: int,
    code: str,
    request_id: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return json_response(error_body(code, request_id, detail), status, headers)
