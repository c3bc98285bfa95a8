// 402claw user Worker: one tenant's data API (src/claw402/tenant_api/runtime.py) with its
// dataset embedded. Reached only through the dispatch Worker, which strips the /t/<slug>
// prefix (x-claw402-path), says where the tenant's root is (x-claw402-root-url), runs the
// paywall, and maps a throw here to 502 tenant_worker_failure.
// Generated beside it: tenant.json (schema, OpenAPI, docs) and dataset.json (the columns).
// 402claw uploads both as text modules, but wrangler and a workerd config with `json` modules
// load a `.json` file as parsed JSON: the Worker takes either form.

import CONFIG_TEXT from "./tenant.json";
import DATASET_TEXT from "./dataset.json";
import { Table } from "./engine.js";
import { StoredTable } from "./stored.js";
import { render, rowJson } from "./output.js";
import { formatForAccept, InvalidQuery, parseQuery, pyRepr } from "./query.js";
import { unquote } from "./paths.js";
import { etag, matches, prefersHtml } from "./manners.js";

const fromJson = (module) => (typeof module === "string" ? JSON.parse(module) : module);
const CONFIG = fromJson(CONFIG_TEXT);
// Parsed once per isolate, at startup (the platform's startup budget, not a request's CPU).
// A dataset too large to embed is an R2 manifest (stored.js), opened on the first request
// (bindings come with it).
let DATASET = null;
let TABLE = null;
let LOAD_ERROR = null;
try {
  DATASET = fromJson(DATASET_TEXT);
  if (!DATASET.r2) TABLE = new Table(DATASET);
} catch (error) {
  LOAD_ERROR = error;
}

const ROOT = CONFIG.rootPlaceholder;

function json(text, status = 200, headers = {}) {
  return new Response(text, { status, headers: { "content-type": "application/json", ...headers } });
}

function error(status, code, requestId, detail, headers = {}) {
  const body = { ok: false, error: code, requestId };
  if (detail) body.detail = detail;
  return json(JSON.stringify(body), status, headers);
}

// The generated documents carry a placeholder where the tenant's public root goes.
function withRoot(text, root) {
  return text.replaceAll(ROOT, root);
}

function tenantPath(request, url) {
  const given = request.headers.get("x-claw402-path");
  return given === null ? unquote(url.pathname) : decodeURIComponent(given);
}

async function records(request, url, requestId) {
  let query;
  let page;
  let extras;
  try {
    query = await parseQuery([...url.searchParams], CONFIG.columns, {
      maxLimit: CONFIG.maxLimit,
      version: String(CONFIG.version),
      // Like the gateway: an Accept header naming no format we serve means json.
      defaultFormat: formatForAccept(request.headers.get("accept")),
    });
    page = await TABLE.records(query);
    extras = await TABLE.summary(query);
  } catch (failure) {
    if (failure instanceof InvalidQuery) return error(400, "invalid_query", requestId, failure.detail);
    throw failure;
  }
  const { body, contentType } = render(page, query.format, extras);
  return new Response(body, { headers: { "content-type": contentType } });
}

async function cacheable(text, contentType, ifNoneMatch) {
  const headers = { etag: await etag(text), "cache-control": CONFIG.documentCache };
  if (matches(ifNoneMatch, headers.etag)) return new Response(null, { status: 304, headers });
  return new Response(text, { headers: { "content-type": contentType, ...headers } });
}

async function record(path, requestId) {
  if (CONFIG.key === null) return error(404, "record_not_found", requestId, "this dataset has no key column");
  const key = path.slice("/v1/records/".length); // the path is decoded once, already
  const row = await TABLE.record(CONFIG.key, key);
  if (row === null) return error(404, "record_not_found", requestId, `no record ${pyRepr(key)}`);
  const names = CONFIG.columns.map((c) => c.name);
  const types = CONFIG.columns.map((c) => c.type);
  return json(`{"ok":true,"item":${rowJson(names, types, row)}}`);
}

export default {
  async fetch(request, env) {
    if (LOAD_ERROR !== null) throw new Error(`dataset unreadable: ${LOAD_ERROR.message}`);
    if (TABLE === null) TABLE = new StoredTable(DATASET, env[DATASET.r2.binding]);
    const url = new URL(request.url);
    const requestId = request.headers.get("x-request-id") || crypto.randomUUID().replaceAll("-", "");
    const root = request.headers.get("x-claw402-root-url") || url.origin;
    const path = tenantPath(request, url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return error(405, "method_not_allowed", requestId, null, { allow: "GET" });
    }
    if (path === "/v1/records") return records(request, url, requestId);
    if (path.startsWith("/v1/records/")) return record(path, requestId);
    const inm = request.headers.get("if-none-match");
    if (path === "/v1/schema") return cacheable(CONFIG.schemaJson, "application/json", inm);
    if (path === "/v1/openapi.json") return cacheable(withRoot(CONFIG.openapiJson, root), "application/json", inm);
    if (path === "/docs" || path === "/docs/") {
      return cacheable(withRoot(CONFIG.docsHtml, root), "text/html; charset=utf-8", inm);
    }
    if (path === "/") {
      const answer = prefersHtml(request.headers.get("accept"))
        ? await cacheable(withRoot(CONFIG.pageHtml, root), "text/html; charset=utf-8", inm)
        : await cacheable(withRoot(CONFIG.indexJson, root), "application/json", inm);
      answer.headers.set("vary", "Accept");
      return answer;
    }
    return error(404, "not_found", requestId, `no route ${path}`);
  },
};
