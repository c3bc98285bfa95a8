// 402claw dispatch Worker: pages for people, made at build time by claw402/cloudflare/pages.py
// with the gateway's renderers. This module only fills in what a request knows:
// - `GET /` on the dispatcher's own host (no tenant's): the catalogue (gateway/catalogue.py),
//   HTML for a browser, JSON otherwise, with the gateway's ETag / 304 and Cache-Control;
// - the paywall page's script at /_claw402/paywall/<hash>.js, from this Worker's origin;
// - a browser's 402 (Accept: text/html) as the x402 paywall page (gateway/steps.paywall_page).

import CATALOGUE from "./catalogue.js";
import PAYWALL from "./paywallpage.js";
import { etag, matches, prefersHtml } from "./manners.js";

const ASSET_PREFIX = "/_claw402/paywall/";
const IMMUTABLE = "public, max-age=31536000, immutable";

function notFound(path, requestId) {
  const body = { ok: false, error: "not_found", requestId, detail: `no asset ${path}` };
  return new Response(JSON.stringify(body), { status: 404, headers: { "content-type": "application/json" } });
}

const BODIES = new Map(); // (origin, form) -> [body, etag], like the gateway's Catalogue

async function catalogue(request, url) {
  const html = prefersHtml(request.headers.get("accept")) && !url.search.includes("format=json");
  const key = `${html ? "html" : "json"} ${url.origin}`;
  let kept = BODIES.get(key);
  if (kept === undefined) {
    const body = (html ? CATALOGUE.html : CATALOGUE.json).replaceAll(CATALOGUE.origin, url.origin);
    kept = [body, await etag(body)];
    if (BODIES.size > 64) BODIES.clear();
    BODIES.set(key, kept);
  }
  const [body, tag] = kept;
  const headers = { etag: tag, "cache-control": CATALOGUE.cacheControl, vary: "Accept" };
  if (matches(request.headers.get("if-none-match"), tag)) return new Response(null, { status: 304, headers });
  const type = html ? "text/html; charset=utf-8" : "application/json";
  return new Response(body, { headers: { "content-type": type, ...headers } });
}

// The dispatcher's hook: an answer for the catalogue or the page's script, else null (a tenant
// request). `isTenantHost(hostHeader)`: whether the Host names a tenant (its `/` is its page).
export async function peoplePage(request, url, path, requestId, isTenantHost) {
  if (path.startsWith(ASSET_PREFIX)) {
    if (PAYWALL === null || path !== PAYWALL.path) return notFound(path, requestId);
    return new Response(PAYWALL.script, {
      headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": IMMUTABLE },
    });
  }
  const read = request.method === "GET" || request.method === "HEAD";
  if (path === "/" && read && !isTenantHost(request.headers.get("host"))) return catalogue(request, url);
  return null;
}

// jinja2's htmlsafe_json_dumps over Python's json.dumps: what pages/paywall.py writes into the
// page's script.
function htmlsafeJson(value) {
  return pyJson(value).replace(/[<>&']/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

// Python's json.dumps (", " and ": ", non-ASCII escaped): also the SDK's PAYMENT-RESPONSE
// encoding (paywall.js).
export function pyJson(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  if (typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${pyJson(k)}: ${pyJson(v)}`).join(", ")}}`;
  }
  if (typeof value === "string") {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }
  return JSON.stringify(value);
}

// markupsafe.escape
const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;" };
function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

function decodeRequired(header) {
  const bytes = Uint8Array.from(atob(header), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

// A 402 for a browser: the tenant's paywall page, its PAYMENT-REQUIRED header and the rest of
// its headers kept; the JSON 402 when there is no page (no payment settings, no EVM offer).
export function paywallPage(request, tenant, answer) {
  if (answer.status !== 402 || PAYWALL === null || !prefersHtml(request.headers.get("accept"))) return answer;
  const parts = PAYWALL.pages[tenant.tenantId];
  const header = answer.headers.get("payment-required");
  if (parts === undefined || !header) return answer;
  const required = decodeRequired(header);
  const exact = (required.accepts || []).filter((a) => a.scheme === "exact" && String(a.network || "").startsWith("eip155:"));
  if (!exact.length) return answer;
  const url = (required.resource && required.resource.url) || "";
  const slots = {
    required: htmlsafeJson({ ...required, accepts: exact }),
    urlJson: htmlsafeJson(url),
    urlHtml: escapeHtml(url),
  };
  const page = parts.map((p) => (typeof p === "number" ? PAYWALL.literals[p] : slots[p])).join("");
  const out = new Response(page, answer);
  out.headers.set("content-type", "text/html; charset=utf-8");
  out.headers.set("vary", "Accept");
  return out;
}
