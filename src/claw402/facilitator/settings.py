"""What a facilitator needs to run: one chain, one gas-paying key, optionally an API key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_NETWORK = re.compile(r"^eip155:([1-9][0-9]*)$")
_PRIVATE_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class FacilitatorSettings:
    """Validated at construction so a typo fails at startup, not on the first payment.

    `authorizer_private_key` signs batch-settlement claims and refunds as the channels'
    `receiverAuthorizer` (advertised in /supported); without it the gas-paying key does.
    `receipt_poll_interval` is how often settle asks the RPC for a receipt that is not ready
    yet (web3 would sleep 100 ms); `confirmation_timeout` bounds the wait before settle
    answers `settlement_pending` with the transaction hash. `database_url` is where the
    Bazaar catalogue is kept (SQLAlchemy URL; `402claw facilitator serve` defaults it to a
    SQLite file in the home); None: a throwaway one, for embedded facilitators.
    """

    rpc_url: str
    private_key: str = field(repr=False)
    network: str
    api_key: str | None = field(default=None, repr=False)
    authorizer_private_key: str | None = field(default=None, repr=False)
    receipt_poll_interval: float = 0.005
    confirmation_timeout: float = 30.0
    max_body_bytes: int = 64 * 1024
    database_url: str | None = field(default=None, repr=False)  # may hold a password

    def __post_init__(self) -> None:
        if not _NETWORK.match(self.network):
            raise SettingsError(
                f"network must be a CAIP-2 EVM id like eip155:31337, got {self.network!r}"
            )
        if not _PRIVATE_KEY.match(self.private_key):
            raise SettingsError("private key must be 32 bytes of hex (64 hex digits)")
        if self.authorizer_private_key is not None and not _PRIVATE_KEY.match(
            self.authorizer_private_key
        ):
            raise SettingsError("authorizer key must be 32 bytes of hex (64 hex digits)")
        if not self.rpc_url.startswith(("http://", "https://")):
            raise SettingsError(f"rpc_url must be an http(s) URL, got {self.rpc_url!r}")
        if self.database_url is not None and "://" not in self.database_url:
            raise SettingsError(
                f"database URL must be a SQLAlchemy URL like sqlite:///path or "
                f"postgresql+psycopg://..., got {self.database_url!r}"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise SettingsError("api_key, when given, must not be empty")

    @property
    def chain_id(self) -> int:
        match = _NETWORK.match(self.network)
        assert match is not None  # checked in __post_init__
        return int(match.group(1))

    @classmethod
    def from_env(
        cls,
        *,
        rpc_url: str,
        private_key_env: str,
        network: str,
        api_key_env: str | None = None,
        authorizer_key_env: str | None = None,
        database_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> FacilitatorSettings:
        """Read secrets from named environment variables, never from the command line."""
        env = os.environ if environ is None else environ
        private_key = env.get(private_key_env, "").strip()
        if not private_key:
            raise SettingsError(f"environment variable {private_key_env} is not set")
        api_key = None
        if api_key_env is not None:
            api_key = env.get(api_key_env, "").strip()
            if not api_key:
                raise SettingsError(f"environment variable {api_key_env} is not set")
        authorizer_key = None
        if authorizer_key_env is not None:
            authorizer_key = env.get(authorizer_key_env, "").strip()
            if not authorizer_key:
                raise SettingsError(f"environment variable {authorizer_key_env} is not set")
        return cls(
            rpc_url=rpc_url,
            private_key=private_key,
            network=network,
            api_key=api_key,
            authorizer_private_key=authorizer_key,
            database_url=database_url,
        )
