"""The facilitator over HTTP: the three endpoints the x402 SDK's `HTTPFacilitatorClient` calls.

- `GET /supported` -> `SupportedResponse` (kinds, signers)
- `POST /verify`   -> `VerifyResponse`, 200 even when the payment is invalid
- `POST /settle`   -> `SettleResponse`, 200 even when settlement fails
- `GET /health`    -> liveness, never behind the API key
- `GET /discovery/resources`, `GET /discovery/search` -> the Bazaar catalogue of the
  resources paid through here (`catalogue`), public like the 402s it was learnt from

Only an unreadable request is a 4xx (`{"error": code, "message": why}`): the SDK client
raises on any non-200, and a bad payment is an answer, not an error. With an API key set,
the three protocol endpoints want `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import httpx
import requests
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from x402.schemas import PaymentPayload, PaymentRequirements

from claw402.facilitator.catalogue import BadQuery
from claw402.facilitator.protocol import BadRequest, parse_request
from claw402.facilitator.service import FacilitatorService, RpcUnavailable
from claw402.facilitator.settings import FacilitatorSettings

logger = logging.getLogger("claw402.facilitator")

_Operation = Callable[[PaymentPayload, PaymentRequirements], BaseModel]


def create_app(
    settings: FacilitatorSettings, facilitator: FacilitatorService | None = None
) -> Starlette:
    """Build the ASGI app; connects to the RPC now and fails fast if it serves another chain."""
    service = facilitator if facilitator is not None else FacilitatorService(settings)
    api_key = settings.api_key

    def unauthorized(request: Request) -> Response | None:
        if api_key is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), api_key.encode()
        ):
            return None
        return _error(
            401,
            "unauthorized",
            "missing or wrong API key: send Authorization: Bearer <key>",
            {"WWW-Authenticate": "Bearer"},
        )

    async def supported(request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        return _json(service.supported())

    async def verify(request: Request) -> Response:
        return await _handle(request, service.verify)

    async def settle(request: Request) -> Response:
        return await _handle(request, service.settle)

    async def _handle(request: Request, operation: _Operation) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        body = await _read_body(request, settings.max_body_bytes)
        if body is None:
            return _error(
                413, "body_too_large", f"request body exceeds {settings.max_body_bytes} bytes"
            )
        try:
            payload, requirements = parse_request(body)
            result = await run_in_threadpool(operation, payload, requirements)
        except BadRequest as exc:
            return _error(400, exc.error, exc.message)
        except RpcUnavailable as exc:
            logger.warning("%s: %s", request.url.path, exc)
            return _error(502, "rpc_unavailable", str(exc))
        except Exception as exc:
            if _caused_by_rpc(exc):
                logger.warning("RPC unreachable during %s: %s", request.url.path, exc)
                return _error(502, "rpc_unavailable", f"the chain RPC did not answer: {exc}")
            logger.exception("%s failed", request.url.path)
            return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")
        return _json(result)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "network": service.network, "signer": service.address})

    async def discovery(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            catalogue = service.catalogue  # reads its database: off the event loop
            read = catalogue.search if request.url.path.endswith("/search") else catalogue.list
            return JSONResponse(await run_in_threadpool(read, params))
        except BadQuery as exc:
            return _error(400, "invalid_query", str(exc))

    return Starlette(
        routes=[
            Route("/discovery/resources", discovery, methods=["GET"]),
            Route("/discovery/search", discovery, methods=["GET"]),
            Route("/supported", supported, methods=["GET"]),
            Route("/verify", verify, methods=["POST"]),
            Route("/settle", settle, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (never buffer a huge upload)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True, exclude_none=True))


def _caused_by_rpc(exc: BaseException | None) -> bool:
    """The SDK wraps transport errors (e.g. in RuntimeError); look down the chain."""
    while exc is not None:
        if isinstance(exc, httpx.HTTPError | requests.RequestException | ConnectionError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)
