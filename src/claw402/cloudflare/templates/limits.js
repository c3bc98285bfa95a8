// 402claw edge limits: src/claw402/limits/limiter.py at the edge, the dispatch Worker's limits
// step. Same order, same answers: the caller's rate (429 rate_limited), then for a records call
// of a tenant with quotas or a spend cap the usage books (429 usage_quota_exceeded, 402
// cap_exceeded), taken before the paywall verifies or settles anything and given back unless
// the call is served (200), so a bare 402 or a failed payment consumes nothing. Every answer
// that passed the rate carries RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers).
//
// The numbers come from the directory (`controls`, exported by claw402.limits.edge from the
// gateway's own Policy); only the windows' arithmetic (limits/windows.py) is written here.
// State lives in Durable Objects: one CallerRate per (tenant, caller), a fixed-window count
// like counters.MemoryCounters (the Workers rate-limit binding fixes one limit and a 10/60 s
// period per binding, so neither `--rate` per tenant nor hour windows fit it), and one
// TenantBooks per tenant, whose input gate makes a take all-or-nothing like the gateway's
// conditional UPDATEs.

import { DurableObject } from "cloudflare:workers";
import { provenPayer } from "./proof.js";
import { STATUS } from "./rules.js";

const SERVED = 200; // limiter.SERVED: a 202 (pending) is answered again, 200 once paid
const QUOTA_DAY = "calls_day";
const QUOTA_MONTH = "calls_month";
const SPEND_DAY = "spend_day";

// -- windows (limits/windows.py) -------------------------------------------------------------

export function fixed(now, seconds) {
  const index = Math.floor(now / seconds);
  return [index, Math.max(1, Math.ceil((index + 1) * seconds - now))];
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

export function day(now) {
  const reset = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
  return [`d${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}`, reset];
}

export function month(now) {
  const reset = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  return [`m${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}`, reset];
}

// datetime.isoformat() of a UTC instant on a whole second: 2026-12-08T00:00:00+00:00
export function isoformat(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "+00:00");
}

// usage.slots: what one paid call takes under these controls now.
export function slots(controls, now) {
  const taken = [];
  if (controls.quotaDay) {
    const [window, reset] = day(now);
    taken.push({ counter: QUOTA_DAY, window, amount: 1, limit: controls.quotaDay, reset });
  }
  if (controls.quotaMonth) {
    const [window, reset] = month(now);
    taken.push({ counter: QUOTA_MONTH, window, amount: 1, limit: controls.quotaMonth, reset });
  }
  if (controls.spendCapDay && controls.priceAtomic > 0) {
    const [window, reset] = day(now);
    taken.push({ counter: SPEND_DAY, window, amount: controls.priceAtomic, limit: controls.spendCapDay, reset });
  }
  return taken;
}

// -- durable state ---------------------------------------------------------------------------

// One per (tenant, caller): the count of the current fixed window, kept in storage too so an
// evicted object does not forget it. Refusals write nothing.
export class CallerRate extends DurableObject {
  async hit(limit, window) {
    const [index, reset] = fixed(Date.now() / 1000, window);
    if (this.slot === undefined) this.slot = (await this.ctx.storage.get("slot")) || null;
    let slot = this.slot;
    if (slot === null || slot.index !== index || slot.window !== window) slot = { index, window, count: 0 };
    if (slot.count >= limit) return { allowed: false, remaining: 0, reset };
    slot = { ...slot, count: slot.count + 1 };
    this.slot = slot;
    this.ctx.storage.put("slot", slot); // the output gate holds the answer until it is stored
    return { allowed: true, remaining: limit - slot.count, reset };
  }
}

const bookKey = (slot) => `${slot.counter}:${slot.window}`;

// One per tenant: its quota and spend counters by window (usage_counters' rows). One call at
// a time runs to its end (the input gate), so a take moves every counter or none.
export class TenantBooks extends DurableObject {
  async take(wanted) {
    const values = await this.ctx.storage.get(wanted.map(bookKey));
    for (const slot of wanted) {
      const used = values.get(bookKey(slot)) || 0;
      if (used + slot.amount > slot.limit) return { refused: slot.counter, used };
    }
    const moved = {};
    for (const slot of wanted) moved[bookKey(slot)] = (values.get(bookKey(slot)) || 0) + slot.amount;
    await this.ctx.storage.put(moved);
    await this.prune(wanted);
    return { refused: null, used: 0 };
  }

  async giveBack(taken) {
    const values = await this.ctx.storage.get(taken.map(bookKey));
    const moved = {};
    for (const slot of taken) moved[bookKey(slot)] = Math.max(0, (values.get(bookKey(slot)) || 0) - slot.amount);
    await this.ctx.storage.put(moved);
  }

  async used(counter, window) {
    return (await this.ctx.storage.get(`${counter}:${window}`)) || 0;
  }

  // Windows that ended are dropped, once per day label seen.
  async prune(wanted) {
    const current = new Set(wanted.map(bookKey));
    const today = wanted.map((s) => s.window).sort().join(",");
    if (this.pruned === today) return;
    this.pruned = today;
    const stale = [...(await this.ctx.storage.list()).keys()].filter((k) => !current.has(k));
    if (stale.length) await this.ctx.storage.delete(stale);
  }
}

// -- the step --------------------------------------------------------------------------------

// (tenant, counter, window, limit) a take was refused for, in this isolate: a bare call is
// then answered 429, not a 402 it could never pay (Limiter._exhausted).
const exhausted = new Set();

function answer(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

// tenant_api.answer.error_answer's shape, with the status dispatch.errors gives the code.
function refusal(code, requestId, detail, headers = {}, fields = {}) {
  return answer(STATUS[code], { ok: false, error: code, requestId, detail, ...fields }, headers);
}

// A limits object that failed on a paid route: fail closed, nothing verified, charged or served.
function unavailable(call, error) {
  call.reason = "limits_unavailable";
  return refusal("limits_unavailable", call.requestId, String((error && error.message) || error), { "retry-after": "1" });
}

function paymentHeader(headers) {
  const v2 = headers.get("payment-signature");
  return v2 !== null ? v2 : headers.get("x-payment");
}

const secondsTo = (when, now) => Math.max(1, Math.trunc((when.getTime() - now.getTime()) / 1000 + 0.999));

function quotaAnswer(requestId, slot, now) {
  const window = slot.counter.endsWith("day") ? "day" : "month";
  return refusal("usage_quota_exceeded", requestId, `this tenant's ${window} quota of ${slot.limit} calls is used up`,
    { "retry-after": String(secondsTo(slot.reset, now)) },
    { quota: { window, limit: slot.limit, reset: isoformat(slot.reset) } });
}

function refuse(call, slot, now) {
  if (slot.counter === SPEND_DAY) {
    return refusal("cap_exceeded", call.requestId, `this tenant's daily spend cap is reached; resets ${isoformat(slot.reset)}`,
      { "retry-after": String(secondsTo(slot.reset, now)) });
  }
  if (exhausted.size > 10000) exhausted.clear();
  exhausted.add(`${call.tenant.tenantId}|${slot.counter}|${slot.window}|${slot.limit}`);
  return quotaAnswer(call.requestId, slot, now);
}

function knownFull(call, now) {
  if (!exhausted.size) return null;
  for (const slot of slots(call.tenant.controls, now)) {
    if (exhausted.has(`${call.tenant.tenantId}|${slot.counter}|${slot.window}|${slot.limit}`)) {
      return quotaAnswer(call.requestId, slot, now);
    }
  }
  return null;
}

function stamp(response, controls, hit) {
  if (hit === null) return response;
  const out = new Response(response.body, response);
  out.headers.append("ratelimit-policy", controls.policyHeader);
  out.headers.append("ratelimit", `"rate";r=${hit.remaining};t=${hit.reset}`);
  return out;
}

async function booked(call, rest) {
  const books = call.env.BOOKS.get(call.env.BOOKS.idFromName(call.tenant.tenantId));
  const now = new Date();
  const wanted = slots(call.tenant.controls, now);
  const wire = wanted.map(({ counter, window, amount, limit }) => ({ counter, window, amount, limit }));
  let taken;
  try {
    taken = await books.take(wire);
  } catch (error) {
    return unavailable(call, error);
  }
  if (taken.refused !== null) return refuse(call, wanted.find((s) => s.counter === taken.refused), now);
  let served = false;
  try {
    const out = await rest();
    served = out.status === SERVED;
    return out;
  } finally {
    if (!served) await giveBack(call, books, wire);
  }
}

// A give-back that fails leaves the slots taken: the books count one call too many (the safe
// side of a quota or cap), and the answer the call earned stands (a 402, a 202 pending "do not
// pay again", an error): replacing it would hide what became of the payment. Logged, and kept
// in the request's last event as `booksKept`.
async function giveBack(call, books, wire) {
  try {
    await books.giveBack(wire);
  } catch (error) {
    call.booksKept = `${(error && error.name) || "Error"}: ${(error && error.message) || error}`;
    console.error(`request ${call.requestId}: usage slots not given back: ${call.booksKept}`);
  }
}

// Limiter.run: `records` says the call is a records route, `paid` that it is a priced one.
export async function limit(call, { records, paid }, rest) {
  const { env, tenant, requestId } = call;
  const controls = tenant.controls;
  if (!env.RATES || !env.BOOKS) {
    call.reason = "no RATES/BOOKS binding";
    return refusal("dispatcher_binding_missing", requestId, "the limits have no RATES/BOOKS Durable Object bindings");
  }
  const header = paid ? paymentHeader(call.request.headers) : null;
  // caller.payer: a wallet only once the header's own signature proves it (proof.js)
  const who = (header ? provenPayer(header) : null) || "a:" + (call.request.headers.get("cf-connecting-ip") || "unknown");
  let hit;
  try {
    hit = await env.RATES.get(env.RATES.idFromName(`${tenant.tenantId}:${who}`)).hit(controls.rate.limit, controls.rate.window);
  } catch (error) {
    if (paid) return unavailable(call, error);
    hit = null; // a free route keeps working without its counter
  }
  if (hit !== null && !hit.allowed) {
    const refused = refusal("rate_limited", requestId, `more than ${controls.rate.text} calls from one caller`,
      { "retry-after": String(hit.reset) });
    return stamp(refused, controls, hit);
  }
  if (!(records && controls.books)) return stamp(await rest(), controls, hit);
  if (paid && header === null) { // a bare 402 takes nothing; refused only when known full
    const full = knownFull(call, new Date());
    return stamp(full !== null ? full : await rest(), controls, hit);
  }
  return stamp(await booked(call, rest), controls, hit);
}
