"""The dispatch Worker bundle: the JS templates plus the generated directory, rules, event kinds
and payments.

`rules.js` carries the slug rules, the correlation-id pattern, each failure's status and the
paywall's claim statuses (`claw402.dispatch`, `payments.schema`) and `directory.js` the tenant
directory, so the Worker and the gateway route with the same data; only the routing code is
written twice (and the contract tests hold the two together). `kinds.js` carries every event
kind from `claw402.events.kinds`: the templates import the kinds they emit from it and spell
none themselves. `payconfig.js` carries the
payment settings the gateway reads from `CLAW402_*` (network, token and its EIP-712 domain,
facilitator, treasury, timeouts) and each priced tenant's offer description; the facilitator's
API key travels as a secret. With payments on, the Worker gets a `PaymentClaims` Durable Object
(binding `CLAIMS`) for nonce claims; always, `CallerRate` (`RATES`, one per tenant and caller)
and `TenantBooks` (`BOOKS`, one per tenant) for the limits (`templates/limits.js`, fed by each
directory entry's `controls`). `MIGRATIONS` lists the Durable Object migration tags in order,
each with the classes it added: `migration_from(tag)` is what an upload to a script carrying
`tag` must send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from claw402.cloudflare.bundle import COMPATIBILITY_DATE, Module, WorkerBundle
from claw402.cloudflare.directory import DirectoryFormat, export_directory
from claw402.cloudflare.noble import noble_modules
from claw402.cloudflare.pages import page_modules
from claw402.cloudflare.workerd import template
from claw402.dispatch.errors import STATUS
from claw402.dispatch.naming import CORRELATION_ID_RE, RESERVED_SLUGS, SLUG_RE
from claw402.events.kinds import BY_NAME
from claw402.payments.config import PaymentConfig
from claw402.payments.schema import CLAIMED, PENDING, SETTLED
from claw402.registry.models import Tenant
from claw402.tenant_api import manners

DEFAULT_SCRIPT_NAME = "claw402-dispatcher"
DEFAULT_NAMESPACE = "claw402"
DISPATCHER_BINDING = "DISPATCHER"
CLAIMS_BINDING = "CLAIMS"
CLAIMS_CLASS = "PaymentClaims"
RATES_BINDING, RATES_CLASS = "RATES", "CallerRate"
BOOKS_BINDING, BOOKS_CLASS = "BOOKS", "TenantBooks"
# Durable Object migration tags, oldest first, each with the classes it added. A new class is
# a new tag at the end; a script at any earlier tag is moved forward by one `steps` migration.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("claw402-claims-v1", (CLAIMS_CLASS,)),
    ("claw402-limits-v2", (RATES_CLASS, BOOKS_CLASS)),
)
MIGRATION_TAG = MIGRATIONS[-1][0]
FACILITATOR_KEY_SECRET = "CLAW402_FACILITATOR_API_KEY"  # the gateway's variable, same name
# The bearer of the Worker's event posts: the variable `402claw serve` checks them with, so
# one exported value serves both (`--secret EVENTS_TOKEN`, its earlier name, still works).
EVENTS_TOKEN_SECRET, LEGACY_EVENTS_SECRET = "CLAW402_EVENTS_TOKEN", "EVENTS_TOKEN"
_BINDING_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


@dataclass(frozen=True)
class DispatcherOptions:
    script_name: str = DEFAULT_SCRIPT_NAME
    dispatch_namespace: str = DEFAULT_NAMESPACE
    events_url: str | None = None  # durable sink for lifecycle events (EVENTS_URL)
    payment: PaymentConfig | None = None  # None: priced routes answer 402, never data
    secrets: Sequence[str] = ()  # secret_text bindings; values come from the environment
    directory_format: DirectoryFormat = "maps"

    @property
    def all_secrets(self) -> list[str]:
        names = list(self.secrets)
        if self.payment is not None and self.payment.facilitator_api_key:
            names.append(FACILITATOR_KEY_SECRET)
        if self.events_url and LEGACY_EVENTS_SECRET not in names:
            names.append(EVENTS_TOKEN_SECRET)  # the sink refuses events without it
        return check_secret_names(names)


def rules_values() -> dict[str, Any]:
    """The dispatcher's rules as data: slug rules, the correlation-id pattern, each failure's
    status (dispatch.errors) and the paywall's claim statuses (payments.schema)."""
    return {
        "SLUG_RE": SLUG_RE.pattern,
        "RESERVED_SLUGS": sorted(RESERVED_SLUGS),
        "REQUEST_ID_RE": CORRELATION_ID_RE.pattern,
        "STATUS": STATUS,
        "CLAIM_STATUS": {"CLAIMED": CLAIMED, "PENDING": PENDING, "SETTLED": SETTLED},
        "MANNERS": {
            "allowOrigin": manners.ALLOW_ORIGIN,
            "exposeHeaders": manners.EXPOSE_HEADERS,
            "allowMethods": manners.ALLOW_METHODS,
            "allowHeaders": manners.ALLOW_HEADERS,
            "maxAge": manners.PREFLIGHT_MAX_AGE,
            "noStore": manners.NO_STORE,
        },
    }


def rules_module() -> Module:
    values = rules_values()
    text = (
        "// Generated from claw402.dispatch (naming, errors), payments.schema and "
        "tenant_api.manners: do not edit.\n"
        f"export const SLUG_RE = new RegExp({json.dumps(values['SLUG_RE'])});\n"
        f"export const RESERVED_SLUGS = new Set({json.dumps(values['RESERVED_SLUGS'])});\n"
        f"export const REQUEST_ID_RE = new RegExp({json.dumps(values['REQUEST_ID_RE'])});\n"
        f"export const STATUS = Object.freeze({json.dumps(values['STATUS'])});\n"
        f"export const CLAIM_STATUS = Object.freeze({json.dumps(values['CLAIM_STATUS'])});\n"
        f"export const MANNERS = Object.freeze({json.dumps(values['MANNERS'])});\n"
    )
    return Module("rules.js", text.encode())


def kinds_module() -> Module:
    lines = ["// Generated from claw402.events.kinds: do not edit."]
    lines += [f"export const {name} = {json.dumps(kind)};" for name, kind in BY_NAME.items()]
    return Module("kinds.js", ("\n".join(lines) + "\n").encode())


def vouchers_module(payment: PaymentConfig | None) -> Module:
    """The batch-settlement voucher's EIP-712 domain from the x402 SDK (name, version and
    contract are the same on every chain; proof.js adds the payer's chain id); `null` with no
    payment settings, where nothing is paid and no voucher proves a payer."""
    fields = None
    if payment is not None:  # the x402 SDK: only when priced
        from x402.mechanisms.evm.batch_settlement.utils import get_batch_settlement_eip712_domain

        domain = get_batch_settlement_eip712_domain(1)
        fields = {k: domain[k] for k in ("name", "version", "verifyingContract")}
    text = (
        "// Generated from the x402 SDK's batch-settlement EIP-712 domain: do not edit.\n"
        f"export const VOUCHER_DOMAIN = Object.freeze({json.dumps(fields, sort_keys=True)});\n"
    )
    return Module("vouchers.js", text.encode())


def directory_module(directory: dict[str, Any]) -> Module:
    # JSON.parse over a string literal: keys like "__proto__" stay data, and V8 parses it faster
    # than the same object literal.
    literal = json.dumps(json.dumps(directory, separators=(",", ":"), sort_keys=True))
    text = f"// Generated tenant directory: do not edit.\nexport default JSON.parse({literal});\n"
    return Module("directory.js", text.encode())


def payment_module(payment: PaymentConfig | None, tenants: Iterable[Tenant]) -> Module:
    """The paywall's settings, or `null` when no payment network is configured."""
    settings: dict[str, Any] | None = None
    if payment is not None:
        from claw402.payments.offer import v1_network_name  # the x402 SDK: only when priced

        legacy = v1_network_name(payment.network)
        settings = {
            "network": payment.network,
            "asset": payment.asset,
            "assetName": payment.asset_name,
            "assetVersion": payment.asset_version,
            "facilitatorUrl": payment.facilitator_url,
            "treasury": payment.treasury,
            "maxTimeoutSeconds": payment.max_timeout_seconds,
            "verifyTimeoutMs": int(payment.verify_timeout * 1000),
            "settleTimeoutMs": int(payment.settle_timeout * 1000),
            "v1Network": legacy or payment.network,
            "v1Names": sorted({payment.network, *([legacy] if legacy else [])}),
            # payments/paywall.Paywall.offer's description, per priced tenant
            "descriptions": {
                t.tenant_id: t.offer_description for t in tenants if t.call_price_atomic > 0
            },
        }
    literal = json.dumps(json.dumps(settings, separators=(",", ":"), sort_keys=True))
    text = f"// Generated payment settings: do not edit.\nexport default JSON.parse({literal});\n"
    return Module("payconfig.js", text.encode())


class UnknownMigrationTag(ValueError):
    """The live script carries a Durable Object migration tag 402claw never wrote."""


class MigrationBehind(ValueError):
    """The upload predates the live script's tag: it would drop Durable Object classes the
    script has, which Cloudflare refuses without a deletion migration."""


def migration_from(
    current: str | None, wanted: str | None = MIGRATION_TAG
) -> dict[str, Any] | None:
    """The `migrations` an upload built at tag `wanted` (None: no Durable Object) sends to a
    script carrying tag `current`: every class up to `wanted` for a new script (or one without
    a tag), the steps after `current` for an older tag (with `old_tag`, so Cloudflare refuses
    it if the script moved meanwhile), None when it is at `wanted`."""
    tags = [tag for tag, _ in MIGRATIONS]
    for tag in (current, wanted):
        if tag is not None and tag not in tags:
            raise UnknownMigrationTag(tag)
    have = -1 if current is None else tags.index(current)
    upto = -1 if wanted is None else tags.index(wanted)
    if have > upto:
        raise MigrationBehind(current)
    if have == upto:
        return None
    if current is None:
        classes = [c for _, added in MIGRATIONS[: upto + 1] for c in added]
        return {"new_tag": wanted, "new_sqlite_classes": classes}
    steps = [{"new_sqlite_classes": list(added)} for _, added in MIGRATIONS[have + 1 : upto + 1]]
    return {"old_tag": current, "new_tag": wanted, "steps": steps}


def check_secret_names(names: Iterable[str]) -> list[str]:
    result = []
    for name in names:
        if not _BINDING_NAME.fullmatch(name):
            raise ValueError(f"secret name {name!r}: use UPPER_CASE letters, digits and _")
        result.append(name)
    return sorted(set(result))


def dispatcher_bindings(options: DispatcherOptions) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = [
        {
            "type": "dispatch_namespace",
            "name": DISPATCHER_BINDING,
            "namespace": options.dispatch_namespace,
        },
    ]
    if options.events_url:
        bindings.append({"type": "plain_text", "name": "EVENTS_URL", "text": options.events_url})
    if options.payment is not None:
        bindings.append(
            {"type": "durable_object_namespace", "name": CLAIMS_BINDING, "class_name": CLAIMS_CLASS}
        )
    for name, class_name in ((RATES_BINDING, RATES_CLASS), (BOOKS_BINDING, BOOKS_CLASS)):
        bindings.append({"type": "durable_object_namespace", "name": name,
                         "class_name": class_name})  # fmt: skip
    bindings += [{"type": "secret_text", "name": n} for n in options.all_secrets]
    return bindings


def build_dispatcher(
    tenants: Iterable[Tenant], options: DispatcherOptions | None = None
) -> WorkerBundle:
    options = options or DispatcherOptions()
    tenants = list(tenants)
    directory = export_directory(tenants, options.directory_format)
    modules = (
        Module("dispatcher.js", template("dispatcher.js")),
        Module("paywall.js", template("paywall.js")),
        Module("limits.js", template("limits.js")),
        Module("paths.js", template("paths.js")),
        Module("proof.js", template("proof.js")),
        vouchers_module(options.payment),
        *noble_modules(),  # secp256k1 and keccak-256 for proof.js
        rules_module(),
        kinds_module(),
        directory_module(directory),
        payment_module(options.payment, tenants),
        *page_modules(tenants, options.payment),  # the catalogue and the paywall page
    )
    metadata: dict[str, Any] = {
        "main_module": "dispatcher.js",
        "compatibility_date": COMPATIBILITY_DATE,
        "bindings": dispatcher_bindings(options),
        "tags": ["claw402", "claw402-dispatcher", f"namespace-{options.dispatch_namespace}"],
        # As on a first upload; deploy.without_applied_migration sends what the live script
        # still needs (the steps after its tag, or nothing).
        "migrations": migration_from(None),
    }
    return WorkerBundle(options.script_name, modules, metadata)


PAYMENT_VARIABLES = (
    "CLAW402_ENV (dev, test or main) and CLAW402_TREASURY, or CLAW402_NETWORK, "
    "CLAW402_ASSET, CLAW402_FACILITATOR_URL and CLAW402_TREASURY"
)


class PaymentsRequired(ValueError):
    """Priced tenants with no payment settings: at the edge they would answer 402 without a
    `PAYMENT-REQUIRED` header, so nobody could pay; nothing is built or uploaded."""


def require_payments(tenants: Iterable[Tenant], payment: PaymentConfig | None) -> None:
    if payment is not None:
        return
    priced = sorted(t.slug for t in tenants if t.price_atomic > 0)
    if priced:
        raise PaymentsRequired(
            f"priced tenant(s) {', '.join(priced)} cannot be served at the edge without payment "
            f"settings (callers would get a 402 they cannot pay): set {PAYMENT_VARIABLES}"
        )
