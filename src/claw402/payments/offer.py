"""What one tenant sells: its x402 payment requirements, the 402 challenge, and the match rule.

Requirements are built once per (tenant, price, payTo) with the SDK's own schema types and
reused; the encoded `PAYMENT-REQUIRED` header is cached per resource URL, so the challenge
path does no pydantic or base64 work after the first call.

`extra` carries the token's EIP-712 domain (`name`, `version`) that payers sign against,
and `tenant`, which binds a payment to the tenant it was made for: two tenants with the same
price and payTo still refuse each other's payments.

A tenant offers up to two schemes at the same price (`tenant.schemes`): `batch-settlement`
first (a channel: one deposit, then a signed voucher per call; its requirements come from
`payments.channels.terms`), then `exact` (one EIP-3009 transfer per call). v1 payers only
know `exact`, so the v1 `accepts` in the body lists `exact` alone. A tenant priced by rows
offers a full page's price (`dispatch.pricing`): the most a channel is charged, and what an
exact payment, which cannot be partial, always pays.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from x402.http.utils import encode_payment_required_header
from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

from claw402.money import atomic_to_usd
from claw402.payments.codec import PAYMENT_IDENTIFIER, PresentedPayment
from claw402.payments.config import PaymentConfig

SCHEME = "exact"
BATCH_SCHEME = "batch-settlement"
EXPOSE_HEADERS = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"
MIME_TYPE = "application/json"
_CACHED_RESOURCES = 256
# The declaration `x402.extensions.payment_identifier.declare_payment_identifier_extension()`
# builds: an optional idempotency id the payer may add to its payment.
_EXTENSIONS = {
    PAYMENT_IDENTIFIER: {
        "info": {"required": False},
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "required": {"type": "boolean"},
                "id": {
                    "type": "string",
                    "minLength": 16,
                    "maxLength": 128,
                    "pattern": "^[a-zA-Z0-9_-]+$",
                },
            },
            "required": ["required"],
        },
    }
}


class Discovery(Protocol):
    """What the 402 tells discovery services about a tenant (`discovery.bazaar.TenantBazaar`):
    the `resource`'s service metadata and the extensions of one resource URL."""

    service_name: str
    tags: list[str]
    description: str

    def extensions(self, resource_url: str) -> dict[str, Any]: ...


# The batch-settlement terms a channel payment must have accepted as offered.
_BATCH_TERMS = ("name", "version", "receiverAuthorizer", "withdrawDelay")


class Mismatch(ValueError):
    """A well-formed payment made for other terms than this tenant's; `reason` is a code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Challenge:
    header: str  # base64 PAYMENT-REQUIRED (v2)
    accepts_v1: list[dict[str, Any]]  # for the JSON body, which v1 clients read
    raw_headers: tuple[tuple[bytes, bytes], ...]  # PAYMENT-REQUIRED and CORS, pre-encoded


def v1_network_name(network: str) -> str | None:
    """The legacy v1 name of a CAIP-2 network (`eip155:8453` -> `base`), if it has one."""
    chain_id = int(network.split(":", 1)[1])
    names = [name for name, cid in V1_NETWORK_CHAIN_IDS.items() if cid == chain_id]
    return names[0] if names else None


class Offer:
    def __init__(
        self,
        config: PaymentConfig,
        *,
        tenant_id: str,
        amount: int,
        pay_to: str,
        description: str,
        batch: PaymentRequirements | None = None,
        exact: bool = True,
        rows_price: str | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.discovery = discovery  # the Bazaar metadata of each 402, if discoverable
        self.batch = batch  # the batch-settlement terms, if this tenant offers channels
        self.exact = exact or batch is None  # never an offer with nothing to pay with
        self.amount = str(amount)
        self.description = discovery.description if discovery is not None else description
        costs = f"costs ${atomic_to_usd(amount)}"
        if rows_price is not None:  # priced by rows: `amount` is a full page's price
            costs = (
                f"costs at most ${atomic_to_usd(amount)} (${rows_price} per 1,000 rows: a "
                "channel pays for the rows returned, an exact payment the full page)"
            )
        self.price_detail = (
            f"this call {costs}: pay with x402 (the PAYMENT-REQUIRED header says how)"
        )
        self.requirements = PaymentRequirements(
            scheme=SCHEME,
            network=config.network,
            asset=config.asset,
            amount=self.amount,
            pay_to=pay_to,
            max_timeout_seconds=config.max_timeout_seconds,
            extra={**config.extra, "tenant": tenant_id},
        )
        self._v1_names = {config.network}
        legacy = v1_network_name(config.network)
        if legacy:
            self._v1_names.add(legacy)
        self._v1_network = legacy or config.network
        self._challenges: OrderedDict[tuple[str, str], Challenge] = OrderedDict()

    @property
    def pay_to(self) -> str:
        return self.requirements.pay_to

    def challenge(self, resource_url: str, error: str) -> Challenge:
        key = (resource_url, error)
        found = self._challenges.get(key)
        if found is not None:
            return found
        resource = ResourceInfo(url=resource_url, description=self.description, mime_type=MIME_TYPE)
        extensions = _EXTENSIONS
        if self.discovery is not None:
            resource.service_name = self.discovery.service_name
            resource.tags = self.discovery.tags
            extensions = {**_EXTENSIONS, **self.discovery.extensions(resource_url)}
        required = PaymentRequired(
            error=error, resource=resource, accepts=self.accepts, extensions=extensions
        )
        header = encode_payment_required_header(required)
        found = Challenge(
            header=header,
            accepts_v1=[self._v1_requirements(resource_url)] if self.exact else [],
            raw_headers=(
                (b"payment-required", header.encode("latin-1")),
                (b"access-control-expose-headers", EXPOSE_HEADERS.encode("latin-1")),
            ),
        )
        self._challenges[key] = found
        if len(self._challenges) > _CACHED_RESOURCES:
            self._challenges.popitem(last=False)
        return found

    @property
    def accepts(self) -> list[PaymentRequirements]:
        """What the 402 offers, in order of preference: a channel first, then exact."""
        offered = [self.batch] if self.batch is not None else []
        return offered + ([self.requirements] if self.exact else [])

    def _v1_requirements(self, resource_url: str) -> dict[str, Any]:
        r = self.requirements
        return {
            "scheme": r.scheme,
            "network": self._v1_network,
            "maxAmountRequired": r.amount,
            "resource": resource_url,
            "description": self.description,
            "mimeType": MIME_TYPE,
            "payTo": r.pay_to,
            "maxTimeoutSeconds": r.max_timeout_seconds,
            "asset": r.asset,
            "extra": r.extra,
        }

    def match(self, payment: PresentedPayment) -> PaymentPayload:
        """The v2 payload to verify and settle, if `payment` pays exactly these terms.

        Raises `Mismatch` otherwise. A v1 payment is lifted to v2 with these requirements
        as `accepted` (the signed authorization is the same in both versions).
        """
        r = self.requirements
        if payment.scheme == BATCH_SCHEME and self.batch is not None:
            if payment.accepted is None or payment.payload is None:
                raise Mismatch("version_mismatch", "batch-settlement needs x402 v2")
            self._match_accepted(payment.accepted, self.batch, _BATCH_TERMS)
            return payment.payload
        if payment.scheme != r.scheme or not self.exact:
            offered = " or ".join(repr(x.scheme) for x in self.accepts)
            raise Mismatch("scheme_mismatch", f"scheme must be {offered}")
        if payment.accepted is not None:
            self._match_accepted(payment.accepted, r, ("name", "version"))
        elif payment.network not in self._v1_names:
            raise Mismatch("network_mismatch", f"network must be {self._v1_network!r}")
        authorization = payment.authorization
        if authorization["to"].lower() != r.pay_to.lower():
            raise Mismatch("pay_to_mismatch", f"the authorization must pay {r.pay_to}")
        if authorization["value"] != r.amount:
            raise Mismatch(
                "amount_mismatch",
                f"the authorization must move exactly {r.amount} atomic units",
            )
        if payment.payload is not None:
            return payment.payload
        return PaymentPayload(payload=payment.inner, accepted=r)

    def _match_accepted(
        self, accepted: PaymentRequirements, r: PaymentRequirements, terms: tuple[str, ...]
    ) -> None:
        if accepted.network != r.network:
            raise Mismatch("network_mismatch", f"network must be {r.network!r}")
        if accepted.asset.lower() != r.asset.lower():
            raise Mismatch("asset_mismatch", f"asset must be {r.asset}")
        if accepted.pay_to.lower() != r.pay_to.lower():
            raise Mismatch("pay_to_mismatch", f"payTo must be {r.pay_to}")
        if accepted.amount != r.amount:
            raise Mismatch("amount_mismatch", f"amount must be exactly {r.amount}")
        if accepted.max_timeout_seconds != r.max_timeout_seconds:
            raise Mismatch("timeout_mismatch", f"maxTimeoutSeconds must be {r.max_timeout_seconds}")
        extra = accepted.extra or {}
        if extra.get("tenant") != self.tenant_id:
            raise Mismatch("tenant_mismatch", "this payment was made for another resource")
        for name in terms:
            if extra.get(name) != r.extra[name]:
                if name in ("name", "version"):
                    raise Mismatch(
                        "domain_mismatch",
                        f"extra.{name} must be {r.extra[name]!r} (the token's EIP-712 domain)",
                    )
                raise Mismatch("channel_terms_mismatch", f"extra.{name} must be {r.extra[name]!r}")
