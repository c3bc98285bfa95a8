// 402claw edge paywall: src/claw402/payments/paywall.py at the edge, for the priced routes of
// the dispatch Worker. Same headers (PAYMENT-REQUIRED, PAYMENT-SIGNATURE / X-PAYMENT,
// PAYMENT-RESPONSE / X-PAYMENT-RESPONSE), same order, same failure answers:
//
// decode the header (400) -> match this tenant's terms (402) -> payment-identifier replay
// (stored answer, or 409) -> claim the authorization's nonce (409 replayed / 202 pending) ->
// verify at the facilitator (503 unreachable, 402 invalid) -> run the query, buffered
// (not 200: its answer, nothing charged) -> settle (402 with a failed receipt, 202 pending)
// -> 200 with the data and PAYMENT-RESPONSE.
//
// Claims and stored answers live in a Durable Object (PaymentClaims, one per payer), strongly
// consistent like the gateway's unique row. Settled payments leave as payment_settled events
// for the platform's books. Without payment settings (payconfig.js exports null) a priced route
// answers 402 and never data, like the gateway without a payment network.

import { DurableObject } from "cloudflare:workers";
import PAY from "./payconfig.js";
import { CLAIM_STATUS } from "./rules.js";
import { paywallPage, pyJson } from "./pages.js";
import {
  PAYMENT_CHALLENGE, PAYMENT_FAILED, PAYMENT_PENDING, PAYMENT_REPLAYED, PAYMENT_SETTLED, PAYMENT_VERIFIED,
} from "./kinds.js";

const PAYMENT_REQUIRED = "PAYMENT-REQUIRED";
const PAYMENT_RESPONSE = "PAYMENT-RESPONSE";
const X_PAYMENT_RESPONSE = "X-PAYMENT-RESPONSE";
const EXPOSE = { "Access-Control-Expose-Headers": "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE" };
const RETRY_AFTER_SECONDS = "2";
const MAX_HEADER_BYTES = 8192;
const PAYMENT_IDENTIFIER = "payment-identifier";
const REJECTED = "facilitator_rejected";
const SETTLEMENT_PENDING = "settlement_pending";
const MIME_TYPE = "application/json";
const EXTENSIONS = {
  [PAYMENT_IDENTIFIER]: {
    info: { required: false },
    schema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        required: { type: "boolean" },
        id: { type: "string", minLength: 16, maxLength: 128, pattern: "^[a-zA-Z0-9_-]+$" },
      },
      required: ["required"],
    },
  },
};
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const UINT = /^[0-9]{1,78}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const PAYMENT_ID = /^[A-Za-z0-9_-]{16,128}$/;
const SIGNATURE = /^0x(?:[0-9a-fA-F]{2}){65,}$/;
const AUTHORIZATION = { from: ADDRESS, to: ADDRESS, value: UINT, validAfter: UINT, validBefore: UINT, nonce: BYTES32 };

class InvalidPayment extends Error {}
class Mismatch extends Error {
  constructor(reason, detail) {
    super(detail);
    this.reason = reason;
    this.detail = detail;
  }
}
class FacilitatorUnavailable extends Error {}
class SettlementUnknown extends Error {
  constructor(message, txHash) {
    super(message);
    this.txHash = txHash || null;
  }
}

// -- answers ---------------------------------------------------------------------------------

function jsonAnswer(status, code, requestId, detail, headers = {}, fields = {}) {
  const body = { ok: false, error: code, requestId };
  if (detail) body.detail = detail;
  Object.assign(body, fields);
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function b64encode(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function receiptHeaders(settlement, version) {
  const value = b64encode(pyJson(settlement));
  const headers = { [PAYMENT_RESPONSE]: value, ...EXPOSE };
  if (version === 1) headers[X_PAYMENT_RESPONSE] = value;
  return headers;
}

// -- the offer: one tenant's terms -----------------------------------------------------------

function offer(tenant) {
  const requirements = {
    scheme: "exact",
    network: PAY.network,
    asset: PAY.asset,
    amount: String(tenant.priceAtomic),
    payTo: tenant.payTo || PAY.treasury,
    maxTimeoutSeconds: PAY.maxTimeoutSeconds,
    extra: { name: PAY.assetName, version: PAY.assetVersion, tenant: tenant.tenantId },
  };
  const description = PAY.descriptions[tenant.tenantId] || `${tenant.slug}: one API call`;
  return {
    requirements,
    description,
    challenge(resourceUrl, error) {
      const required = {
        x402Version: 2,
        error,
        resource: { url: resourceUrl, description, mimeType: MIME_TYPE },
        accepts: [requirements],
        extensions: EXTENSIONS,
      };
      return {
        header: b64encode(JSON.stringify(required)),
        acceptsV1: [{
          scheme: requirements.scheme,
          network: PAY.v1Network,
          maxAmountRequired: requirements.amount,
          resource: resourceUrl,
          description,
          mimeType: MIME_TYPE,
          payTo: requirements.payTo,
          maxTimeoutSeconds: requirements.maxTimeoutSeconds,
          asset: requirements.asset,
          extra: requirements.extra,
        }],
      };
    },
  };
}

function challengeAnswer(call, terms, code, detail, fields = {}, headers = {}) {
  const error = fields.reason ? `${code}: ${fields.reason}` : code;
  const challenge = terms.challenge(call.resourceUrl, error);
  return jsonAnswer(402, code, call.requestId, detail, { [PAYMENT_REQUIRED]: challenge.header, ...EXPOSE, ...headers },
    { x402Version: 1, accepts: challenge.acceptsV1, ...fields });
}

// -- reading a payment header (codec.py) -----------------------------------------------------

function paymentHeader(headers) {
  const v2 = headers.get("payment-signature");
  return v2 !== null ? v2 : headers.get("x-payment");
}

// Python's repr() of a JSON scalar, for the same sentence as the gateway.
function pyValue(value) {
  if (value === undefined || value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return `'${value}'`;
  return typeof value === "number" ? String(value) : JSON.stringify(value);
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function checkInner(inner) {
  const authorization = isObject(inner) ? inner.authorization : null;
  if (!isObject(authorization)) throw new InvalidPayment("payload.authorization must be an EIP-3009 authorization object");
  const bad = Object.entries(AUTHORIZATION)
    .filter(([name, pattern]) => typeof authorization[name] !== "string" || !pattern.test(authorization[name]))
    .map(([name]) => name);
  if (bad.length) throw new InvalidPayment(`payload.authorization: malformed ${bad.join(", ")}`);
  if (typeof inner.signature !== "string" || !SIGNATURE.test(inner.signature)) {
    throw new InvalidPayment("payload.signature must be 0x-prefixed hex of at least 65 bytes");
  }
  return inner;
}

function requireFields(object, fields, where) {
  const problems = [];
  for (const [name, type] of Object.entries(fields)) {
    const value = object[name];
    const ok = type === "int" ? Number.isInteger(value) || (typeof value === "string" && /^[0-9]+$/.test(value))
      : type === "object" ? isObject(value) : typeof value === type;
    if (!ok) problems.push(`${where}${name}: ${value === undefined ? "Field required" : `Input should be a valid ${type === "int" ? "integer" : type === "object" ? "dictionary" : "string"}`}`);
  }
  if (problems.length) throw new InvalidPayment(problems.slice(0, 3).join("; "));
}

async function decodePayment(value) {
  if (value.length > MAX_HEADER_BYTES) {
    throw new InvalidPayment(`payment header is ${value.length} bytes; the limit is ${MAX_HEADER_BYTES}`);
  }
  let data;
  try {
    const text = value.trim();
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error("not base64");
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new InvalidPayment("payment header is not base64-encoded JSON");
  }
  if (!isObject(data)) throw new InvalidPayment("payment header must encode a JSON object");
  const version = data.x402Version;
  const digest = await sha256Hex(canonical(data));
  if (version === 2) {
    try {
      requireFields(data, { payload: "object", accepted: "object" }, "");
      requireFields(data.accepted, { scheme: "string", network: "string", asset: "string", amount: "string", payTo: "string", maxTimeoutSeconds: "int" }, "accepted.");
      if (data.accepted.extra !== undefined && data.accepted.extra !== null) requireFields(data.accepted, { extra: "object" }, "accepted.");
    } catch (error) {
      throw new InvalidPayment(`not an x402 v2 payment: ${error.message}`);
    }
    const accepted = { ...data.accepted, maxTimeoutSeconds: Number(data.accepted.maxTimeoutSeconds), extra: data.accepted.extra || {} };
    const payload = { x402Version: 2, payload: checkInner(data.payload), accepted };
    if (isObject(data.resource)) payload.resource = data.resource;
    if (isObject(data.extensions)) payload.extensions = data.extensions;
    const extension = isObject(data.extensions) ? data.extensions[PAYMENT_IDENTIFIER] : null;
    const info = isObject(extension) ? extension.info : null;
    const paymentId = isObject(info) && info.id !== undefined && info.id !== null ? info.id : null;
    if (paymentId !== null && (typeof paymentId !== "string" || !PAYMENT_ID.test(paymentId))) {
      throw new InvalidPayment("payment-identifier id must be 16-128 characters of A-Z a-z 0-9 _ -");
    }
    return { version: 2, scheme: accepted.scheme, network: accepted.network, accepted, inner: payload.payload, payload, paymentId, digest };
  }
  if (version === 1) {
    try {
      requireFields(data, { scheme: "string", network: "string", payload: "object" }, "");
    } catch (error) {
      throw new InvalidPayment(`not an x402 v1 payment: ${error.message}`);
    }
    return { version: 1, scheme: data.scheme, network: data.network, accepted: null, inner: checkInner(data.payload), payload: null, paymentId: null, digest };
  }
  throw new InvalidPayment(`x402Version must be 1 or 2, got ${pyValue(version)}`);
}

// offer.match: the v2 payload to verify and settle, if the payment pays exactly these terms.
function match(terms, tenant, payment) {
  const r = terms.requirements;
  if (payment.scheme !== r.scheme) throw new Mismatch("scheme_mismatch", `scheme must be '${r.scheme}'`);
  if (payment.accepted !== null) {
    const a = payment.accepted;
    if (a.network !== r.network) throw new Mismatch("network_mismatch", `network must be '${r.network}'`);
    if (a.asset.toLowerCase() !== r.asset.toLowerCase()) throw new Mismatch("asset_mismatch", `asset must be ${r.asset}`);
    if (a.payTo.toLowerCase() !== r.payTo.toLowerCase()) throw new Mismatch("pay_to_mismatch", `payTo must be ${r.payTo}`);
    if (a.amount !== r.amount) throw new Mismatch("amount_mismatch", `amount must be exactly ${r.amount}`);
    if (a.maxTimeoutSeconds !== r.maxTimeoutSeconds) throw new Mismatch("timeout_mismatch", `maxTimeoutSeconds must be ${r.maxTimeoutSeconds}`);
    const extra = a.extra || {};
    if (extra.tenant !== tenant.tenantId) throw new Mismatch("tenant_mismatch", "this payment was made for another resource");
    for (const name of ["name", "version"]) {
      if (extra[name] !== r.extra[name]) {
        throw new Mismatch("domain_mismatch", `extra.${name} must be '${r.extra[name]}' (the token's EIP-712 domain)`);
      }
    }
  } else if (!PAY.v1Names.includes(payment.network)) {
    throw new Mismatch("network_mismatch", `network must be '${PAY.v1Network}'`);
  }
  const authorization = payment.inner.authorization;
  if (authorization.to.toLowerCase() !== r.payTo.toLowerCase()) throw new Mismatch("pay_to_mismatch", `the authorization must pay ${r.payTo}`);
  if (authorization.value !== r.amount) throw new Mismatch("amount_mismatch", `the authorization must move exactly ${r.amount} atomic units`);
  return payment.payload !== null ? payment.payload : { x402Version: 2, payload: payment.inner, accepted: r };
}

// -- the facilitator over HTTP (facilitator.py) ----------------------------------------------

async function post(env, operation, payload, requirements, timeoutMs) {
  const headers = { "content-type": "application/json" };
  if (env.CLAW402_FACILITATOR_API_KEY) headers.authorization = `Bearer ${env.CLAW402_FACILITATOR_API_KEY}`;
  return fetch(`${PAY.facilitatorUrl}/${operation}`, {
    method: "POST",
    headers,
    body: JSON.stringify({ x402Version: payload.x402Version, paymentPayload: payload, paymentRequirements: requirements }),
    signal: AbortSignal.timeout(timeoutMs),
  });
}

const UNAVAILABLE_STATUSES = new Set([401, 403, 408, 429]);

async function verify(env, payload, requirements) {
  let response;
  try {
    response = await post(env, "verify", payload, requirements, PAY.verifyTimeoutMs);
  } catch (error) {
    throw new FacilitatorUnavailable(`facilitator unreachable: ${error.name}: ${error.message}`);
  }
  const text = await response.text();
  if (response.status !== 200) {
    if (response.status >= 500 || UNAVAILABLE_STATUSES.has(response.status)) {
      throw new FacilitatorUnavailable(`Facilitator verify failed (${response.status}): ${text}`);
    }
    return { isValid: false, invalidReason: REJECTED, invalidMessage: `Facilitator verify failed (${response.status}): ${text}`.slice(0, 300) };
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new FacilitatorUnavailable("the facilitator's verify answer is not JSON");
  }
}

async function settleOnce(env, payload, requirements) {
  let response;
  try {
    response = await post(env, "settle", payload, requirements, PAY.settleTimeoutMs);
  } catch (error) {
    // The gateway tells a refused connection (nothing sent: 503) from one lost after sending
    // (outcome unknown: 202 pending). A Worker's fetch says "Network connection lost." for
    // both, so every failure here is treated as possibly broadcast: never "nothing was
    // charged" when something may have been.
    throw new SettlementUnknown(`settle interrupted, the facilitator may have acted: ${error.name}: ${error.message}`);
  }
  const text = await response.text();
  if (response.status !== 200) {
    const message = `Facilitator settle failed (${response.status}): ${text}`;
    if (UNAVAILABLE_STATUSES.has(response.status)) throw new FacilitatorUnavailable(message);
    if (response.status < 500) {
      return { success: false, errorReason: REJECTED, errorMessage: message.slice(0, 300), transaction: "", network: requirements.network };
    }
    throw new SettlementUnknown(message);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new SettlementUnknown("the facilitator's settle answer is not JSON");
  }
}

const pendingAgain = (r) => !r.success && r.errorReason === SETTLEMENT_PENDING && Boolean(r.transaction);

async function settle(env, payload, requirements) {
  let result = await settleOnce(env, payload, requirements);
  if (pendingAgain(result)) {
    result = await settleOnce(env, payload, requirements);
    if (pendingAgain(result)) throw new SettlementUnknown("settlement still pending", result.transaction);
  }
  return result;
}

// -- durable claims --------------------------------------------------------------------------

// One object per payer (claims) and per payment-identifier id (stored answers). Each call is
// one read-then-write; the object's input gate runs them one at a time.
export class PaymentClaims extends DurableObject {
  async claim(key, record) {
    const existing = await this.ctx.storage.get(key);
    if (existing) return { won: false, status: existing.status, txHash: existing.txHash || null };
    await this.ctx.storage.put(key, { ...record, status: CLAIM_STATUS.CLAIMED, at: Date.now() });
    return { won: true, status: CLAIM_STATUS.CLAIMED };
  }

  async release(key) {
    const existing = await this.ctx.storage.get(key);
    if (existing && existing.status === CLAIM_STATUS.CLAIMED) await this.ctx.storage.delete(key);
  }

  async mark(key, status, txHash) {
    const existing = await this.ctx.storage.get(key);
    if (existing) await this.ctx.storage.put(key, { ...existing, status, txHash: txHash || null, at: Date.now() });
  }

  async storedResponse(paymentId) {
    return (await this.ctx.storage.get(`response:${paymentId}`)) || null;
  }

  async storeResponse(paymentId, stored) {
    if (!(await this.ctx.storage.get(`response:${paymentId}`))) await this.ctx.storage.put(`response:${paymentId}`, stored);
  }
}

function claims(env, name) {
  return env.CLAIMS.get(env.CLAIMS.idFromName(name));
}

// -- the guard -------------------------------------------------------------------------------

// A tenant priced by rows (dispatch/pricing.py) has a full page's price as its priceAtomic. The
// edge offers exact only, and an exact transfer cannot be partial: it pays that maximum,
// as at the gateway (only a batch-settlement channel, at the gateway, pays by rows returned).
function costs(tenant) {
  if (!tenant.pricePer1kRows) return `costs $${tenant.price} per call`;
  return `costs at most $${tenant.price} per call ($${tenant.pricePer1kRows} per 1,000 rows; ` +
    "an exact payment cannot be partial and pays the full page)";
}

function unpriced(call) {
  return jsonAnswer(402, "payment_required", call.requestId,
    `${call.resourceUrl} ${costs(call.tenant)}; this dispatcher has no payment ` +
    "network configured (build it with CLAW402_ENV or CLAW402_FACILITATOR_URL set)");
}

// call: {request, env, tenant, requestId, resourceUrl, emit(kind, status, reason, details)}.
// A browser's 402 is the x402 paywall page (pages.js), an API client's the JSON challenge.
export async function guard(call, produce) {
  return paywallPage(call.request, call.tenant, await pay(call, produce));
}

async function pay(call, produce) {
  if (PAY === null) return unpriced(call);
  if (!call.env.CLAIMS) {
    return jsonAnswer(500, "dispatcher_binding_missing", call.requestId, "the paywall has no CLAIMS Durable Object binding");
  }
  const { tenant, request } = call;
  const terms = offer(tenant);
  const header = paymentHeader(request.headers);
  if (header === null) {
    call.emit(PAYMENT_CHALLENGE, 402);
    return challengeAnswer(call, terms, "payment_required",
      `${call.resourceUrl} ${costs(tenant)}: pay with x402 (the PAYMENT-REQUIRED header says how)`);
  }
  let payment;
  let payload;
  try {
    payment = await decodePayment(header);
    payload = match(terms, tenant, payment);
  } catch (error) {
    if (error instanceof InvalidPayment) {
      call.emit(PAYMENT_FAILED, 400, "invalid_payment", { detail: error.message });
      return jsonAnswer(400, "invalid_payment", call.requestId, error.message);
    }
    if (error instanceof Mismatch) {
      call.emit(PAYMENT_FAILED, 402, error.reason);
      return challengeAnswer(call, terms, "payment_mismatch", error.detail, { reason: error.reason });
    }
    throw error;
  }
  return new Attempt(call, terms, payment, payload).run(produce);
}

class Attempt {
  constructor(call, terms, payment, payload) {
    Object.assign(this, { call, terms, payment, payload });
    this.started = performance.now();
    this.claimKey = null;
    const r = terms.requirements;
    this.payer = payment.inner.authorization.from;
    this.nonce = payment.inner.authorization.nonce.toLowerCase();
    this.claimsObject = claims(call.env, `${r.network}:${this.payer.toLowerCase()}`);
    this.facts = { network: r.network, payer: this.payer, nonce: this.nonce, amount: r.amount, payTo: r.payTo, x402Version: payment.version };
  }

  emit(kind, status, reason = null, details = {}, timed = false) {
    this.call.emit(kind, status, reason, { ...details, ...this.facts }, timed ? performance.now() - this.started : null);
  }

  async run(produce) {
    const { call } = this;
    if (this.payment.paymentId !== null) {
      const stored = await claims(call.env, `pid:${this.payment.paymentId}`).storedResponse(this.payment.paymentId);
      if (stored !== null) return this.replayStored(stored);
    }
    const early = await this.claim();
    if (early !== null) return early;
    let answer;
    let paid;
    try {
      [answer, paid] = await this.verifyAndProduce(produce);
    } catch (error) {
      await this.release();
      throw error;
    }
    if (!paid) {
      await this.release();
      return answer;
    }
    try {
      return await this.settle(answer);
    } catch (error) {
      await this.claimsObject.mark(this.claimKey, CLAIM_STATUS.PENDING, null); // a settle may have been broadcast
      throw error;
    }
  }

  replayStored(stored) {
    if (stored.digest !== this.payment.digest) {
      this.emit(PAYMENT_FAILED, 409, "payment_id_conflict");
      return jsonAnswer(409, "payment_id_conflict", this.call.requestId,
        "this payment-identifier id was already used with a different payment");
    }
    this.emit(PAYMENT_REPLAYED, stored.status);
    return new Response(stored.body, { status: stored.status, headers: stored.headers });
  }

  async claim() {
    const r = this.terms.requirements;
    const key = `claim:${this.nonce}`;
    const claim = await this.claimsObject.claim(key, {
      network: r.network, payer: this.payer.toLowerCase(), nonce: this.nonce, tenantId: this.call.tenant.tenantId,
      requestId: this.call.requestId, amount: r.amount, asset: r.asset, payTo: r.payTo,
    });
    if (claim.won) {
      this.claimKey = key;
      return null;
    }
    if (claim.status === CLAIM_STATUS.PENDING) {
      this.emit(PAYMENT_FAILED, 202, "payment_pending");
      return this.pending(claim.txHash);
    }
    this.emit(PAYMENT_FAILED, 409, "payment_replayed");
    return jsonAnswer(409, "payment_replayed", this.call.requestId, "this payment authorization was already presented; sign a new one");
  }

  async verifyAndProduce(produce) {
    const { call } = this;
    let verified;
    try {
      verified = await verify(call.env, this.payload, this.terms.requirements);
    } catch (error) {
      if (!(error instanceof FacilitatorUnavailable)) throw error;
      this.emit(PAYMENT_FAILED, 503, "facilitator_unavailable", { detail: error.message });
      return [this.unavailable(), false];
    }
    if (!verified.isValid) {
      const reason = verified.invalidReason || "invalid_payment";
      this.emit(PAYMENT_FAILED, 402, reason);
      return [challengeAnswer(call, this.terms, "payment_invalid",
        verified.invalidMessage || `the facilitator refused this payment: ${reason}`, { reason }), false];
    }
    this.emit(PAYMENT_VERIFIED, 200, null, {}, true);
    const answer = await produce();
    if (answer.status !== 200) {
      this.emit(PAYMENT_FAILED, answer.status, "not_charged_query_failed");
      return [answer, false];
    }
    return [answer, true];
  }

  async settle(answer) {
    const { call } = this;
    const r = this.terms.requirements;
    let settlement;
    try {
      settlement = await settle(call.env, this.payload, r);
    } catch (error) {
      if (error instanceof FacilitatorUnavailable) {
        await this.release();
        this.emit(PAYMENT_FAILED, 503, "facilitator_unavailable", { detail: error.message });
        return this.unavailable();
      }
      if (error instanceof SettlementUnknown) {
        await this.claimsObject.mark(this.claimKey, CLAIM_STATUS.PENDING, error.txHash);
        this.emit(PAYMENT_PENDING, 202, "settlement_unknown", { detail: error.message, transaction: error.txHash }, true);
        return this.remember(this.pending(error.txHash));
      }
      throw error;
    }
    if (!settlement.success) {
      await this.release();
      const reason = settlement.errorReason || "settlement_failed";
      this.emit(PAYMENT_FAILED, 402, reason);
      return challengeAnswer(call, this.terms, "payment_settlement_failed",
        settlement.errorMessage || `settlement failed: ${reason}; nothing was charged`, { reason },
        receiptHeaders(settlementDump(settlement, r, this.payer, false), this.payment.version));
    }
    const receipt = settlementDump(settlement, r, this.payer, true);
    await this.claimsObject.mark(this.claimKey, CLAIM_STATUS.SETTLED, receipt.transaction);
    const headers = new Headers(answer.headers);
    for (const [name, value] of Object.entries(receiptHeaders(receipt, this.payment.version))) headers.set(name, value);
    this.emit(PAYMENT_SETTLED, 200, null, { transaction: receipt.transaction, resource: call.resourceUrl }, true);
    return this.remember(new Response(answer.body, { status: answer.status, headers }));
  }

  unavailable() {
    return jsonAnswer(503, "facilitator_unavailable", this.call.requestId,
      "the payment facilitator cannot be reached; nothing was charged, retry later", { "Retry-After": RETRY_AFTER_SECONDS });
  }

  pending(txHash) {
    const detail = txHash
      ? `settlement transaction ${txHash} is not confirmed yet`
      : "the settlement may have been broadcast; its outcome is not known yet";
    return jsonAnswer(202, "payment_pending", this.call.requestId,
      `${detail}: do not pay again; retry this request with the same payment later`,
      { "Retry-After": RETRY_AFTER_SECONDS },
      { transaction: txHash, payer: this.payer, nonce: this.nonce, network: this.terms.requirements.network });
  }

  async remember(answer) {
    if (this.payment.paymentId === null) return answer;
    const body = await answer.arrayBuffer();
    const headers = Object.fromEntries([...answer.headers].filter(([k]) => k.toLowerCase() !== "content-length"));
    await claims(this.call.env, `pid:${this.payment.paymentId}`).storeResponse(this.payment.paymentId,
      { digest: this.payment.digest, status: answer.status, headers, body });
    return new Response(body, { status: answer.status, headers: answer.headers });
  }

  async release() {
    if (this.claimKey === null) return;
    const key = this.claimKey;
    this.claimKey = null;
    await this.claimsObject.release(key);
  }
}

// The SettleResponse fields in the SDK's order, without the empty ones (exclude_none).
function settlementDump(s, requirements, payer, fill) {
  const out = { success: Boolean(s.success) };
  if (s.errorReason) out.errorReason = s.errorReason;
  if (s.errorMessage) out.errorMessage = s.errorMessage;
  const who = s.payer || (fill ? payer : null);
  if (who) out.payer = who;
  out.transaction = s.transaction || "";
  out.network = s.network || requirements.network;
  if (s.amount !== undefined && s.amount !== null) out.amount = s.amount;
  if (s.extensions) out.extensions = s.extensions;
  return out;
}
