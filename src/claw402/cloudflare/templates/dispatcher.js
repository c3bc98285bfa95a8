// 402claw dispatch Worker: the gateway's dispatcher (src/claw402/dispatch + gateway/steps.py) at
// the edge, in the same steps: resolve the tenant (Host first, then /t/<slug>/ with the prefix
// stripped), its plan's limits, the paywall for priced routes, then the tenant's user Worker
// through the dispatch namespace; stamp x-request-id / x-tenant-id, and send lifecycle events.
// Every request gets its own id; a caller's well-formed x-request-id is kept as its
// correlation id (x-correlation-id on the answer, correlationId in every event).
// Plain ES module, no dependencies. Generated files beside it: directory.js, rules.js, kinds.js.

import DIRECTORY from "./directory.js";
import { MANNERS, RESERVED_SLUGS, SLUG_RE, REQUEST_ID_RE, STATUS } from "./rules.js";
import { DISPATCH_FAILURE, DISPATCH_START, DISPATCH_SUCCESS } from "./kinds.js";
import { guard } from "./paywall.js";
import { peoplePage } from "./pages.js";
import { limit } from "./limits.js";

export { PaymentClaims } from "./paywall.js";
export { CallerRate, TenantBooks } from "./limits.js";
import { encodePath, unquote } from "./paths.js";

// What the platform throws from a user Worker that ran over its custom limits.
const LIMIT_ERROR_RE = /exceeded (its )?(cpu|CPU|memory|resource)|too many subrequests/i;

const { byHost, bySlug } = indexDirectory(DIRECTORY);

// Accept both export shapes: {byHost, bySlug} and {tenants: [...]}. Maps, not plain objects,
// so a slug like "constructor" cannot hit a prototype property.
export function indexDirectory(directory) {
  const hosts = new Map();
  const slugs = new Map();
  if (Array.isArray(directory.tenants)) {
    for (const entry of directory.tenants) {
      slugs.set(entry.slug, entry);
      for (const host of entry.hosts || []) hosts.set(host, entry);
    }
  } else {
    for (const [slug, entry] of Object.entries(directory.bySlug || {})) slugs.set(slug, entry);
    for (const [host, entry] of Object.entries(directory.byHost || {})) hosts.set(host, entry);
  }
  return { byHost: hosts, bySlug: slugs };
}

// naming.request_host: lowercase, port removed, trailing dot dropped, "[::1]:80" kept as is.
export function requestHost(header) {
  if (!header) return null;
  const value = header.trim().toLowerCase();
  if (value.startsWith("[")) return value;
  const host = value.includes(":") ? value.slice(0, value.lastIndexOf(":")) : value;
  return host.replace(/\.+$/, "");
}

export function isValidSlug(slug) {
  return SLUG_RE.test(slug) && !RESERVED_SLUGS.has(slug);
}

// routing.Directory.resolve over a percent-decoded path (what an ASGI server hands the gateway).
export function resolve(hostHeader, path, index = { byHost, bySlug }) {
  const host = requestHost(hostHeader);
  if (host !== null && index.byHost.has(host)) {
    return { tenant: index.byHost.get(host), path, byPath: false };
  }
  if (!path.startsWith("/t/")) return null;
  const rest = path.slice(3);
  const cut = rest.indexOf("/");
  const slug = cut < 0 ? rest : rest.slice(0, cut);
  if (!isValidSlug(slug) || !index.bySlug.has(slug)) return null;
  return { tenant: index.bySlug.get(slug), path: cut < 0 ? "/" : rest.slice(cut), byPath: true };
}

function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function errorResponse(status, code, requestId, detail, headers = {}) {
  const body = { ok: false, error: code, requestId };
  if (detail) body.detail = detail;
  return json(body, status, headers);
}

function fail(code, requestId, detail) {
  return errorResponse(STATUS[code], code, requestId, detail);
}

// events/compact.event: the same fields in every runtime.
export function event(type, requestId, tenant, { status = null, durationMs = null, reason = null, ...details } = {}) {
  const record = {
    type,
    ts: Date.now() / 1000,
    requestId,
    tenantId: tenant ? tenant.tenantId : null,
    workerName: tenant ? tenant.workerName : null,
    limits: tenant ? tenant.limits : null,
    status,
    durationMs: durationMs === null ? null : Math.round(durationMs * 1000) / 1000,
    reason,
  };
  if (Object.keys(details).length) record.details = details;
  return record;
}

// The durable sink: a service binding (EVENTS) or an HTTP endpoint (EVENTS_URL, with
// CLAW402_EVENTS_TOKEN, or EVENTS_TOKEN, as a bearer secret), one batch per request, off
// the response path. A refused post is logged: its events are lost.
function sendEvents(env, ctx, events) {
  const body = JSON.stringify({ events });
  const init = { method: "POST", headers: { "content-type": "application/json" }, body };
  let sent = null;
  if (env.EVENTS && typeof env.EVENTS.fetch === "function") {
    sent = env.EVENTS.fetch("https://events.internal/events", init);
  } else if (env.EVENTS_URL) {
    const token = env.CLAW402_EVENTS_TOKEN || env.EVENTS_TOKEN;
    if (token) init.headers.authorization = `Bearer ${token}`;
    sent = fetch(env.EVENTS_URL, init);
  }
  if (sent && ctx && ctx.waitUntil) {
    const done = (r) => {
      if (!r.ok) console.error("events refused", r.status, env.EVENTS_URL || "EVENTS");
      return r.body && r.body.cancel();
    };
    ctx.waitUntil(sent.then(done, (e) => console.error("events", e.message)));
  }
}

function stamp(response, requestId, tenant, correlationId) {
  const out = new Response(response.body, response);
  // tenant_api/manners.py: any origin may call, and a browser sees the x402 headers.
  out.headers.set("access-control-allow-origin", MANNERS.allowOrigin);
  out.headers.set("access-control-expose-headers", MANNERS.exposeHeaders);
  out.headers.set("x-request-id", requestId);
  if (tenant) out.headers.set("x-tenant-id", tenant.tenantId);
  else out.headers.delete("x-tenant-id");
  if (correlationId) out.headers.set("x-correlation-id", correlationId);
  else out.headers.delete("x-correlation-id");
  return out;
}

// The caller's id for a request, kept beside ours in every event of it.
function correlate(events, correlationId) {
  if (correlationId) for (const e of events) e.correlationId = correlationId;
  return events;
}

// The request the user Worker sees: the stripped path (also in x-claw402-path, exact), the
// tenant's public root and the request id. Caller-sent x-claw402-* headers are dropped.
function tenantRequest(request, url, resolution, requestId) {
  const headers = new Headers(request.headers);
  for (const name of [...headers.keys()]) if (name.startsWith("x-claw402-")) headers.delete(name);
  const encoded = encodePath(resolution.path);
  let root = url.origin;
  if (resolution.byPath) root += `/t/${resolution.tenant.slug}`;
  headers.set("x-claw402-path", encoded);
  headers.set("x-claw402-root-url", root);
  headers.set("x-request-id", requestId);
  const target = new URL(url.origin);
  target.pathname = encoded;
  target.search = url.search;
  return {
    request: new Request(target.toString(), { method: request.method, headers, body: request.body, redirect: "manual" }),
    resourceUrl: root + resolution.path,
  };
}

const PAID = (path, method) =>
  (method === "GET" || method === "HEAD") && (path === "/v1/records" || path.startsWith("/v1/records/"));

// The request path, step by step: the gateway's steps (src/claw402/gateway/steps.py) with the
// same names in the same order (tests/contract checks the steps both report). A step answers,
// or hands the call on with next(call); a new step on every request is one entry here.
export const STEPS = [
  ["resolve", resolveStep],
  ["limits", limitsStep],
  ["guard", guardStep],
  ["run", runStep],
];

function next(call) {
  const [name, step] = STEPS[call.steps.length];
  call.steps.push(name);
  return step(call);
}

// The tenant by Host, then by /t/<slug> (404 tenant_not_found), and its binding (500).
async function resolveStep(call) {
  const resolution = resolve(call.request.headers.get("host"), call.fullPath);
  if (resolution === null) {
    call.events.push(event(DISPATCH_FAILURE, call.requestId, null, {
      status: 404, reason: "tenant_not_found", path: call.fullPath, steps: [...call.steps],
    }));
    return fail("tenant_not_found", call.requestId);
  }
  call.tenant = resolution.tenant;
  call.path = resolution.path;
  call.events.push(event(DISPATCH_START, call.requestId, call.tenant, { path: call.path }));
  if (!call.env.DISPATCHER || typeof call.env.DISPATCHER.get !== "function") {
    call.reason = "no DISPATCHER binding";
    return fail("dispatcher_binding_missing", call.requestId);
  }
  const forwarded = tenantRequest(call.request, call.url, resolution, call.requestId);
  call.tenantRequest = forwarded.request;
  call.resourceUrl = forwarded.resourceUrl;
  return next(call);
}

// The plan's limits, passed to the dispatch namespace with the call; then the caller's rate
// and the tenant's quotas and spend cap (limits.js), before the paywall sees the call.
async function limitsStep(call) {
  call.limits = { cpuMs: call.tenant.limits.cpuMs, subRequests: call.tenant.limits.subRequests };
  const records = PAID(call.path, call.request.method);
  const paid = records && Number(call.tenant.priceAtomic || 0) > 0;
  return limit(call, { records, paid }, () => next(call));
}

// A priced tenant's paid routes go through the paywall, which runs the rest once paid. Its
// answer (a 402, paid data, a payment error) is for this caller and payment only: no-store.
async function guardStep(call) {
  const paid = Number(call.tenant.priceAtomic || 0) > 0 && PAID(call.path, call.request.method);
  if (!paid) return next(call);
  const answer = await guard(call, () => next(call));
  const out = new Response(answer.body, answer);
  out.headers.set("cache-control", MANNERS.noStore);
  return out;
}

// A browser's CORS preflight, answered before any tenant step.
function preflight() {
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-methods": MANNERS.allowMethods,
      "access-control-allow-headers": MANNERS.allowHeaders,
      "access-control-max-age": MANNERS.maxAge,
    },
  });
}

// The tenant's user Worker answers, buffered whole (like the gateway) so a paywall can settle
// before a byte leaves.
async function runStep(call) {
  const { tenant, requestId } = call;
  try {
    const worker = call.env.DISPATCHER.get(tenant.workerName, {}, { limits: call.limits });
    const answer = await worker.fetch(call.tenantRequest);
    return new Response(await answer.arrayBuffer(), answer);
  } catch (error) {
    const message = String((error && error.message) || error);
    if (message.startsWith("Worker not found")) {
      call.reason = "tenant_not_found";
      return fail("tenant_not_found", requestId);
    }
    if (LIMIT_ERROR_RE.test(message)) {
      call.reason = "tenant_limit_exceeded";
      return fail("tenant_limit_exceeded", requestId, `the tenant ran over its ${tenant.plan} plan limits`);
    }
    call.reason = `${(error && error.name) || "Error"}: ${message}`;
    return fail("tenant_worker_failure", requestId);
  }
}

// An exception no step answered (a Durable Object that failed, a bug), answered as the gateway
// answers one (gateway/app.py): 502 tenant_worker_failure once a tenant is resolved, else 500
// internal_error, in the usual shape and stamps, with a dispatch_failure event giving the reason.
function crashed(call, error) {
  const reason = `${(error && error.name) || "Error"}: ${(error && error.message) || error}`;
  console.error(`request ${call.requestId}: ${reason}`);
  call.reason = reason;
  if (call.tenant !== null) return fail("tenant_worker_failure", call.requestId);
  call.events.push(event(DISPATCH_FAILURE, call.requestId, null, {
    status: 500, reason, path: call.fullPath, steps: [...call.steps],
  }));
  return fail("internal_error", call.requestId);
}

export default {
  async fetch(request, env, ctx) {
    const started = performance.now();
    const incoming = request.headers.get("x-request-id") || "";
    const correlationId = REQUEST_ID_RE.test(incoming) ? incoming : null;
    const requestId = crypto.randomUUID().replaceAll("-", "");
    const events = [];
    // What every step and the paywall see of the request.
    const call = {
      request, env, url: null, fullPath: null, requestId, events, steps: [], reason: null,
      tenant: null, path: null, resourceUrl: null, tenantRequest: null, limits: null, booksKept: null,
      emit(kind, status, reason = null, details = {}, durationMs = null) {
        events.push(event(kind, requestId, call.tenant, { status, reason, durationMs, ...details }));
      },
    };
    let response;
    try {
      call.url = new URL(request.url);
      call.fullPath = unquote(call.url.pathname);
      if (call.fullPath === "/healthz") return stamp(json({ ok: true }), requestId, null, correlationId);
      if (request.method === "OPTIONS") return stamp(preflight(), requestId, null, correlationId);
      // The catalogue on this host's `/` and the paywall page's script (pages.js), as the gateway.
      const isTenantHost = (h) => byHost.has(requestHost(h));
      const page = await peoplePage(request, call.url, call.fullPath, requestId, isTenantHost);
      if (page !== null) return stamp(page, requestId, null, correlationId);
      response = await next(call);
    } catch (error) {
      response = crashed(call, error);
    }
    if (call.tenant !== null) {
      if (call.reason === null && response.status === 503) call.reason = "tenant_limit_exceeded";
      const kind = call.reason ? DISPATCH_FAILURE : DISPATCH_SUCCESS;
      const last = { status: response.status, durationMs: performance.now() - started, reason: call.reason,
        steps: [...call.steps] };
      if (call.booksKept) last.booksKept = call.booksKept; // limits.js: slots not given back
      events.push(event(kind, requestId, call.tenant, last));
    }
    sendEvents(env, ctx, correlate(events, correlationId));
    return stamp(response, requestId, call.tenant, correlationId);
  },
};
