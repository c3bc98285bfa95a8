"""The Cloudflare API through the official SDK: one client, the two uploads, clear errors.

Uploads are PUTs of a whole script, so a retry repeats the same final state: two retries with
the SDK's backoff (it honours `retry-after`) on 408/409/429/5xx and connection errors. The read
timeout is long because a user Worker carries its dataset (up to 10 MiB compressed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import cloudflare
from claw402.cloudflare.bundle import WorkerBundle

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
UPLOAD_TIMEOUT = 120.0  # seconds to send a script and get the answer
CONNECT_TIMEOUT = 10.0
MAX_RETRIES = 2
# Secrets uploaded earlier stay bound when an upload (a rollback) does not carry them.
KEEP_BINDINGS = ["secret_text", "secret_key"]


class CloudflareApiError(RuntimeError):
    """A failed API call, explained; `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """Where uploads go. The token is read at call time and never stored anywhere."""

    account_id: str
    dispatch_namespace: str
    api_token: str | None = None
    base_url: str | None = None
    timeout: float = UPLOAD_TIMEOUT
    max_retries: int = MAX_RETRIES

    @property
    def api_base(self) -> str:
        return self.base_url or os.environ.get("CLOUDFLARE_BASE_URL") or DEFAULT_BASE_URL

    def token(self) -> str:
        token = self.api_token or os.environ.get("CLOUDFLARE_API_TOKEN")
        if not token:
            raise CloudflareApiError("no API token: pass --api-token or set CLOUDFLARE_API_TOKEN")
        return token

    def client(self) -> cloudflare.Cloudflare:
        import cloudflare  # the SDK costs ~0.2 s to import: only when a call is made

        return cloudflare.Cloudflare(
            api_token=self.token(),
            base_url=self.api_base,
            timeout=httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT),
            max_retries=self.max_retries,
        )


def dispatcher_path(account_id: str, script_name: str) -> str:
    return f"/accounts/{account_id}/workers/scripts/{script_name}"


def tenant_path(account_id: str, namespace: str, script_name: str) -> str:
    return f"/accounts/{account_id}/workers/dispatch/namespaces/{namespace}/scripts/{script_name}"


def object_path(account_id: str, bucket: str, key: str) -> str:
    return f"/accounts/{account_id}/r2/buckets/{bucket}/objects/{key}"


def scripts_path(account_id: str) -> str:
    return f"/accounts/{account_id}/workers/scripts"


def current_migration_tag(target: Target, script_name: str) -> str | None:
    """GET /accounts/{a}/workers/scripts: the script's Durable Object migration tag, if any.

    Migrations run once per tag: an upload carrying a tag the script already has is refused,
    so the deploy asks first (as wrangler does).
    """
    with explained(target):
        scripts = target.client().workers.scripts.list(account_id=target.account_id)
        for script in scripts:
            if script.id == script_name:
                return script.migration_tag
    return None


def upload_metadata(bundle: WorkerBundle, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The metadata part as sent: secret values joined in, earlier secrets kept."""
    bindings = [b for b in bundle.metadata.get("bindings", []) if b["type"] != "secret_text"]
    bindings += [{"type": "secret_text", "name": k, "text": v} for k, v in sorted(secrets.items())]
    return {**bundle.metadata, "bindings": bindings, "keep_bindings": KEEP_BINDINGS}


def _files(bundle: WorkerBundle) -> list[tuple[str, bytes, str]]:
    return [(m.name, m.content, m.content_type) for m in bundle.modules]


def upload_dispatcher(
    target: Target, bundle: WorkerBundle, secrets: Mapping[str, str]
) -> dict[str, Any]:
    """PUT /accounts/{a}/workers/scripts/{name}: the dispatch Worker is an ordinary Worker."""
    with explained(target):
        result = target.client().workers.scripts.update(
            bundle.script_name,
            account_id=target.account_id,
            metadata=upload_metadata(bundle, secrets),  # type: ignore[arg-type]
            files=_files(bundle),
        )
    return result.model_dump(exclude_none=True)


def upload_tenant(
    target: Target, bundle: WorkerBundle, secrets: Mapping[str, str]
) -> dict[str, Any]:
    """PUT /accounts/{a}/workers/dispatch/namespaces/{ns}/scripts/{name}."""
    with explained(target):
        result = target.client().workers_for_platforms.dispatch.namespaces.scripts.update(
            bundle.script_name,
            account_id=target.account_id,
            dispatch_namespace=target.dispatch_namespace,
            metadata=upload_metadata(bundle, secrets),  # type: ignore[arg-type]
            files=_files(bundle),
        )
    return result.model_dump(exclude_none=True)


@contextmanager
def explained(target: Target) -> Iterator[None]:
    """Turn SDK exceptions into one error type whose message says what to do."""
    import cloudflare

    try:
        yield
    except cloudflare.CloudflareError as exc:
        raise explain(exc, target) from exc


def _api_messages(body: object) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = [
        f"{e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e) for e in errors
    ]
    return " (" + "; ".join(parts) + ")" if parts else ""


def explain(exc: cloudflare.CloudflareError, target: Target) -> CloudflareApiError:
    import cloudflare

    retries = f"after {target.max_retries} retries"
    if isinstance(exc, cloudflare.APITimeoutError):
        return CloudflareApiError(f"the Cloudflare API at {target.api_base} timed out {retries}")
    if isinstance(exc, cloudflare.APIConnectionError):
        return CloudflareApiError(
            f"could not reach the Cloudflare API at {target.api_base} "
            f"{retries}: {exc.__cause__ or exc}"
        )
    if not isinstance(exc, cloudflare.APIStatusError):
        return CloudflareApiError(f"Cloudflare SDK error: {exc}")
    status, detail = exc.status_code, _api_messages(exc.body)
    if status == 401:
        text = "Cloudflare rejected the API token (401): check CLOUDFLARE_API_TOKEN or --api-token"
    elif status == 403:
        text = (
            f"the API token may not edit Workers on account {target.account_id} (403): it "
            "needs the Workers Scripts Edit permission (and for `cloudflare up` with a zone, "
            "Workers Routes Edit and SSL and Certificates Edit)"
        )
    elif status == 404:
        text = (
            f"account {target.account_id} or dispatch namespace "
            f"{target.dispatch_namespace!r} not found (404)"
        )
    elif status == 429:
        text = f"rate limited by the Cloudflare API (429) {retries}: try again later"
    elif status >= 500:
        text = f"the Cloudflare API failed ({status}) {retries}: try again later"
    else:
        text = f"the Cloudflare API refused the upload ({status})"
    return CloudflareApiError(text + detail, status)
