"""What every web client expects of a tenant answer: CORS, caching rules and revalidation.

Both runtimes say the same (the dispatch Worker's `dispatcher.js` and `worker.js` carry the
same values): any origin may call a tenant API (it is public and paid per call, no cookies),
and a browser must see the x402 headers, so they are exposed. A 402 and a paid answer are
never stored by a cache (the next caller must pay); the free documents are cacheable and
revalidated by `ETag`, so a client polling the schema costs a 304.
"""

from __future__ import annotations

import hashlib

from claw402.tenant_api.answer import Answer, RawHeaders

ALLOW_ORIGIN = "*"
EXPOSE_HEADERS = (
    "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE, x-request-id, x-correlation-id, "
    "x-tenant-id"
)
ALLOW_METHODS = "GET, HEAD, OPTIONS"
# What a browser's x402 client sends: the payment (v2 and v1), idempotency and correlation.
ALLOW_HEADERS = "PAYMENT-SIGNATURE, X-PAYMENT, x-request-id, accept, content-type"
PREFLIGHT_MAX_AGE = "86400"
NO_STORE = "no-store"
DOCUMENT_CACHE = "public, max-age=60"  # short: a price or a deploy changes the documents

_EXPOSE = b"access-control-expose-headers"
CORS_HEADERS: RawHeaders = [
    (b"access-control-allow-origin", ALLOW_ORIGIN.encode()),
    (_EXPOSE, EXPOSE_HEADERS.encode()),
]
_NO_STORE = (b"cache-control", NO_STORE.encode())


def with_cors(answer: Answer) -> Answer:
    """`answer` with the CORS headers (a paywall's narrower expose list replaced). In place,
    like the gateway's other stamps: it runs on every request, replayed 402s included."""
    headers = answer.raw_headers
    for i, (name, _) in enumerate(headers):
        if name == _EXPOSE:
            del headers[i]
            break
    headers += CORS_HEADERS
    return answer


def no_store(answer: Answer) -> Answer:
    """`answer` marked for no cache: a 402 or a paid answer."""
    answer.raw_headers.append(_NO_STORE)
    return answer


def preflight() -> Answer:
    """The answer to a CORS preflight (`OPTIONS`) on any path; `with_cors` adds the rest."""
    return Answer(
        204,
        headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        },
    )


def etag(body: bytes) -> str:
    """A strong validator of a body: the first 16 bytes of its SHA-256 (the Worker's too)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an `If-None-Match` header names `tag` (weak comparison, `*` for any)."""
    if not if_none_match:
        return False
    for item in if_none_match.split(","):
        item = item.strip()
        if item == "*" or item.removeprefix("W/") == tag:
            return True
    return False


def cacheable(answer: Answer, if_none_match: str | None) -> Answer:
    """A free document with its `ETag` and `Cache-Control`; a 304 when the caller has it."""
    tag = etag(answer.body)
    headers = {"ETag": tag, "Cache-Control": DOCUMENT_CACHE}
    if matches(if_none_match, tag):
        return Answer(304, b"", headers)
    answer.set_headers(headers)
    return answer
