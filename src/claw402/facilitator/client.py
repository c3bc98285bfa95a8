"""Client-side helpers: point the SDK's `HTTPFacilitatorClient` at a 402claw facilitator."""

from __future__ import annotations

from x402.http import FacilitatorConfig
from x402.http.facilitator_client_base import AuthHeaders


class BearerAuth:
    """An SDK `AuthProvider` sending `Authorization: Bearer <key>` to every endpoint."""

    def __init__(self, api_key: str) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def get_auth_headers(self) -> AuthHeaders:
        return AuthHeaders(
            verify=dict(self._headers),
            settle=dict(self._headers),
            supported=dict(self._headers),
            bazaar=dict(self._headers),
        )


def facilitator_config(
    url: str, api_key: str | None = None, timeout: float = 30.0
) -> FacilitatorConfig:
    """`FacilitatorConfig` for `HTTPFacilitatorClient(...)` / `HTTPFacilitatorClientSync(...)`."""
    return FacilitatorConfig(
        url=url,
        timeout=timeout,
        auth_provider=BearerAuth(api_key) if api_key is not None else None,
    )
