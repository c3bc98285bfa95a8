"""Which chain, token and facilitator the paywall uses, per environment (`CLAW402_ENV`).

- `dev`: the local chain; everything comes from the environment (`402claw dev` sets it).
- `test`: Base Sepolia and its USDC; the public test facilitator is the default.
- `prod`: Base mainnet USDC, through a facilitator that is not the public test one and that
  takes an API key.

Everything is checked once at start, so a typo stops the gateway with a message that names
the variable to fix instead of failing the first paid call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

DEV, TEST, PROD = "dev", "test", "prod"
ENVIRONMENTS = (DEV, TEST, PROD)
PUBLIC_TEST_FACILITATOR = "https://x402.org/facilitator"

_NETWORK = re.compile(r"^eip155:[1-9][0-9]{0,18}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class PaymentConfigError(ValueError):
    """The payment settings are unusable; the message says which variable to fix."""


@dataclass(frozen=True)
class Chain:
    """A network and its USDC-like token, with the EIP-712 domain payers sign against."""

    network: str
    asset: str
    asset_name: str
    asset_version: str


BASE_SEPOLIA = Chain("eip155:84532", "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC", "2")
BASE = Chain("eip155:8453", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin", "2")
FIXED_CHAINS = {TEST: BASE_SEPOLIA, PROD: BASE}


@dataclass(frozen=True)
class PaymentConfig:
    """Everything the paywall needs besides the database; validated on construction.

    `treasury` is the `payTo` of tenants deployed without one. `verify_timeout` bounds a
    call to the facilitator's `/verify`; `settle_timeout` bounds `/settle` (a settle that
    times out after broadcast answers "pending", never a fresh 402).

    `rpc_url` (`CLAW402_RPC_URL`) lets the paywall read the chain when a settle's outcome
    is unknown: a retry of a pending payment is then served if it was paid, or settled again
    if it was not (after `pending_retry_seconds`, `CLAW402_PENDING_RETRY_SECONDS`). Without
    it a pending payment waits for `402claw reconcile`. `max_attempts`
    (`CLAW402_PAYMENT_MAX_ATTEMPTS`) bounds the failed attempts of one authorization.

    Channels (batch-settlement): `channel_withdraw_delay` (`CLAW402_CHANNEL_WITHDRAW_DELAY`)
    is the withdrawal delay new channels must name; the channel manager claims every
    `channel_claim_seconds` and settles every `channel_settle_seconds`. With an `rpc_url` it
    also watches the escrow for timed withdrawals and claims those channels at once; without
    one, the claim interval must be at most a third of the delay, so every voucher is
    claimed before a payer's timed withdrawal can end.
    """

    network: str
    asset: str
    asset_name: str
    asset_version: str
    facilitator_url: str
    treasury: str
    facilitator_api_key: str | None = field(default=None, repr=False)
    max_timeout_seconds: int = 300
    environment: str = DEV
    verify_timeout: float = 10.0
    settle_timeout: float = 60.0
    rpc_url: str | None = None
    pending_retry_seconds: float = 120.0
    max_attempts: int = 3
    channel_withdraw_delay: int = 900
    channel_claim_seconds: float = 60.0
    channel_settle_seconds: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        if self.environment not in ENVIRONMENTS:
            problems.append(f"CLAW402_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if not _NETWORK.match(self.network):
            problems.append(
                f"CLAW402_NETWORK must be a CAIP-2 EVM id like eip155:31337, got {self.network!r}"
            )
        for name, value in (("CLAW402_ASSET", self.asset), ("CLAW402_TREASURY", self.treasury)):
            if not _ADDRESS.match(value):
                problems.append(f"{name} must be a 0x address (40 hex digits), got {value!r}")
        if not self.asset_name or not self.asset_version:
            problems.append("CLAW402_ASSET_NAME and CLAW402_ASSET_VERSION must not be empty")
        if not self.facilitator_url.startswith(("http://", "https://")):
            problems.append(
                f"CLAW402_FACILITATOR_URL must be an http(s) URL, got {self.facilitator_url!r}"
            )
        if not 6 < self.max_timeout_seconds <= 86_400:
            problems.append("CLAW402_MAX_TIMEOUT_SECONDS must be between 7 and 86400")
        if self.verify_timeout <= 0 or self.settle_timeout <= 0:
            problems.append("facilitator timeouts must be positive")
        if self.rpc_url is not None and not self.rpc_url.startswith(("http://", "https://")):
            problems.append(f"CLAW402_RPC_URL must be an http(s) URL, got {self.rpc_url!r}")
        if not 0 <= self.pending_retry_seconds <= 86_400:
            problems.append("CLAW402_PENDING_RETRY_SECONDS must be between 0 and 86400")
        if not 1 <= self.max_attempts <= 100:
            problems.append("CLAW402_PAYMENT_MAX_ATTEMPTS must be between 1 and 100")
        problems += self._channel_problems()
        problems += self._policy_problems()
        if problems:
            raise PaymentConfigError("payment configuration: " + "; ".join(problems))
        object.__setattr__(self, "asset", to_checksum_address(self.asset))
        object.__setattr__(self, "treasury", to_checksum_address(self.treasury))
        object.__setattr__(self, "facilitator_url", self.facilitator_url.rstrip("/"))

    def _channel_problems(self) -> list[str]:
        """Channels: a voucher must be claimed well before a payer's withdrawal can finish."""
        problems = []
        if not 900 <= self.channel_withdraw_delay <= 30 * 86_400:
            problems.append("CLAW402_CHANNEL_WITHDRAW_DELAY must be between 900 and 2592000 s")
        longest = 30 * 86_400 if self.rpc_url else self.channel_withdraw_delay / 3
        if not 0 < self.channel_claim_seconds <= longest:
            problems.append(
                "CLAW402_CHANNEL_CLAIM_SECONDS must be positive and, without CLAW402_RPC_URL "
                "(which lets the manager watch withdrawals), at most a third of "
                "CLAW402_CHANNEL_WITHDRAW_DELAY (claims must land before a withdrawal ends)"
            )
        if not 0 < self.channel_settle_seconds <= 30 * 86_400:
            problems.append("CLAW402_CHANNEL_SETTLE_SECONDS must be positive")
        return problems

    def _policy_problems(self) -> list[str]:
        fixed = FIXED_CHAINS.get(self.environment)
        problems = []
        if fixed is not None:
            actual = Chain(self.network, self.asset.lower(), self.asset_name, self.asset_version)
            wanted = Chain(
                fixed.network, fixed.asset.lower(), fixed.asset_name, fixed.asset_version
            )
            if actual != wanted:
                problems.append(
                    f"CLAW402_ENV={self.environment} pays in USDC on {fixed.network} "
                    f"({fixed.asset}, domain {fixed.asset_name!r}/{fixed.asset_version!r}); "
                    "unset CLAW402_NETWORK/CLAW402_ASSET or use CLAW402_ENV=dev for other chains"
                )
        if self.environment == PROD:
            if self.facilitator_url.rstrip("/") == PUBLIC_TEST_FACILITATOR:
                problems.append(
                    "CLAW402_ENV=prod refuses the public test facilitator "
                    f"{PUBLIC_TEST_FACILITATOR}: set CLAW402_FACILITATOR_URL to a production one"
                )
            if not self.facilitator_api_key:
                problems.append("CLAW402_ENV=prod requires CLAW402_FACILITATOR_API_KEY")
        return problems

    @property
    def extra(self) -> dict[str, str]:
        """The `extra` of the payment requirements: the token's EIP-712 domain."""
        return {"name": self.asset_name, "version": self.asset_version}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PaymentConfig:
        """Read `CLAW402_*` variables; raises `PaymentConfigError` naming what to fix."""
        env = os.environ if environ is None else environ
        config = _from_env(env)
        if config is None:
            raise PaymentConfigError(
                "no payment network configured: set CLAW402_ENV=test or prod, or CLAW402_ENV=dev "
                "with CLAW402_NETWORK, CLAW402_ASSET, CLAW402_FACILITATOR_URL and CLAW402_TREASURY"
            )
        return config


_PAYMENT_VARS = ("CLAW402_NETWORK", "CLAW402_ASSET", "CLAW402_FACILITATOR_URL")


def _from_env(env: Mapping[str, str]) -> PaymentConfig | None:
    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    environment = (get("CLAW402_ENV") or "").lower()
    if not environment:
        if not any(get(name) for name in _PAYMENT_VARS):
            return None
        environment = DEV
    if environment not in ENVIRONMENTS:
        raise PaymentConfigError(
            f"CLAW402_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
        )
    fixed = FIXED_CHAINS.get(environment)
    defaults = fixed or Chain("", "", "USD Coin", "2")
    required = {
        "CLAW402_NETWORK": get("CLAW402_NETWORK") or defaults.network,
        "CLAW402_ASSET": get("CLAW402_ASSET") or defaults.asset,
        "CLAW402_FACILITATOR_URL": get("CLAW402_FACILITATOR_URL")
        or (PUBLIC_TEST_FACILITATOR if environment == TEST else ""),
        "CLAW402_TREASURY": get("CLAW402_TREASURY") or "",
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise PaymentConfigError(
            f"payment configuration (CLAW402_ENV={environment}): set {', '.join(missing)}"
        )
    try:
        max_timeout = int(get("CLAW402_MAX_TIMEOUT_SECONDS") or 300)
    except ValueError:
        raise PaymentConfigError("CLAW402_MAX_TIMEOUT_SECONDS must be an integer") from None
    try:
        retry_seconds = float(get("CLAW402_PENDING_RETRY_SECONDS") or 120)
    except ValueError:
        raise PaymentConfigError("CLAW402_PENDING_RETRY_SECONDS must be a number") from None
    try:
        max_attempts = int(get("CLAW402_PAYMENT_MAX_ATTEMPTS") or 3)
    except ValueError:
        raise PaymentConfigError("CLAW402_PAYMENT_MAX_ATTEMPTS must be an integer") from None
    channels = {
        "channel_withdraw_delay": _number(get, "CLAW402_CHANNEL_WITHDRAW_DELAY", 900, int),
        "channel_claim_seconds": _number(get, "CLAW402_CHANNEL_CLAIM_SECONDS", 60.0, float),
        "channel_settle_seconds": _number(get, "CLAW402_CHANNEL_SETTLE_SECONDS", 300.0, float),
    }
    return PaymentConfig(
        network=required["CLAW402_NETWORK"],
        asset=required["CLAW402_ASSET"],
        asset_name=get("CLAW402_ASSET_NAME") or defaults.asset_name,
        asset_version=get("CLAW402_ASSET_VERSION") or defaults.asset_version,
        facilitator_url=required["CLAW402_FACILITATOR_URL"],
        treasury=required["CLAW402_TREASURY"],
        facilitator_api_key=get("CLAW402_FACILITATOR_API_KEY"),
        max_timeout_seconds=max_timeout,
        environment=environment,
        rpc_url=get("CLAW402_RPC_URL"),
        pending_retry_seconds=retry_seconds,
        max_attempts=max_attempts,
        **channels,
    )


def _number(get: Callable[[str], str | None], name: str, default: Any, kind: type) -> Any:
    try:
        return kind(get(name) or default)
    except ValueError:
        raise PaymentConfigError(f"{name} must be a number") from None


def payment_config_from_env(environ: Mapping[str, str] | None = None) -> PaymentConfig | None:
    """The configured `PaymentConfig`, or None when no payment network is configured at all."""
    return _from_env(os.environ if environ is None else environ)
