// The query grammar of src/claw402/datasets/query.py (its docstring is the specification):
// URL parameters -> a validated query, or InvalidQuery with the same sentence the gateway
// gives. Its vocabulary (operators, limits, formats, messages) is generated into grammar.js
// from that module (cloudflare/grammar.py).

import {
  B64URL_RE, BOOLS, CONTROL_PARAMS, DEFAULT_LIMIT, FORMATS, INT64_MAX, INT64_MIN, INT_RE,
  MAX_CURSOR_CHARS, MAX_FACETS, MAX_FILTERS, REPEATABLE_PARAMS, MAX_IN_VALUES, MAX_Q_CHARS, MAX_VALUE_CHARS, MEDIA_TYPES,
  NUM_RE, OPERATORS, TEXT_OPERATORS, TYPE_ARTICLES, TYPE_EXPECTED,
} from "./grammar.js";

export { FORMATS };
// The date and timestamp patterns are datasets/query.py's, with capture groups for parsing.
const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
const TS_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$/;

export class InvalidQuery extends Error {
  constructor(detail) {
    super(detail);
    this.detail = detail;
  }
}

// -- Python-compatible text helpers ---------------------------------------------------------

// Strings compare by code point (UTF-8 byte order, like Python and DuckDB), not UTF-16 unit.
export function compareText(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

// text[:n] on code points, as Python slices.
export function head(text, n) {
  let out = "";
  let count = 0;
  for (const ch of text) {
    if (count++ >= n) break;
    out += ch;
  }
  return out;
}

const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

// Python's repr() of a str, for error sentences identical to the gateway's (V8 may know a newer
// Unicode than the gateway's Python: a code point unassigned there is escaped by Python only).
export function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += "\\" + quote;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      if (cp < 0x100) out += "\\x" + cp.toString(16).padStart(2, "0");
      else if (cp < 0x10000) out += "\\u" + cp.toString(16).padStart(4, "0");
      else out += "\\U" + cp.toString(16).padStart(8, "0");
    } else out += ch;
  }
  return out + quote;
}

// -- values ---------------------------------------------------------------------------------

function daysInMonth(year, month) {
  return [31, year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

function validDate(y, m, d) {
  return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);
}

const pad = (n, w) => String(n).padStart(w, "0");

// A timestamp value: "YYYY-MM-DD HH:MM:SS.ffffff", fixed width, so text order is time order.
export function timestampKey(y, mo, d, h, mi, s, us) {
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)} ${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(us, 6)}`;
}

function parseTimestamp(value) {
  const m = TS_RE.exec(value);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!validDate(y, mo, d)) return null;
  const h = m[4] === undefined ? 0 : Number(m[4]);
  const mi = m[5] === undefined ? 0 : Number(m[5]);
  const s = m[6] === undefined ? 0 : Number(m[6]);
  const us = m[7] === undefined ? 0 : Number(m[7].padEnd(6, "0"));
  if (h > 23 || mi > 59 || s > 59) return null;
  let offsetMinutes = 0;
  if (m[8] !== undefined && m[8] !== "Z") {
    const oh = Number(m[8].slice(1, 3));
    const om = Number(m[8].slice(4, 6));
    if (oh > 23 || om > 59) return null;
    offsetMinutes = (m[8][0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  if (offsetMinutes === 0) return timestampKey(y, mo, d, h, mi, s, us);
  // Shift to UTC with a proleptic Gregorian calendar (Date handles years 1-9999 exactly).
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi - offsetMinutes, s, 0);
  const year = date.getUTCFullYear();
  if (year < 1 || year > 9999) return null;
  return timestampKey(year, date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), us);
}

// A filter value in the column's type (datasets/values.py convert): numbers, booleans, strings, dates as
// "YYYY-MM-DD" and timestamps as timestampKey text.
export function convert(value, column) {
  const kind = column.type;
  if (kind === "string") return value;
  if (kind === "integer" && INT_RE.test(value) && value.length <= 20) {
    const big = BigInt(value);
    if (big >= INT64_MIN && big <= INT64_MAX) return Number(big);
  } else if (kind === "number" && NUM_RE.test(value) && value.length <= 64) {
    const number = Number(value);
    if (Number.isFinite(number)) return number;
  } else if (kind === "boolean" && Object.hasOwn(BOOLS, value.toLowerCase())) {
    return BOOLS[value.toLowerCase()];
  } else if (kind === "date") {
    const m = DATE_RE.exec(value);
    if (m && validDate(Number(m[1]), Number(m[2]), Number(m[3]))) return value;
  } else if (kind === "timestamp") {
    const key = parseTimestamp(value);
    if (key !== null) return key;
  }
  throw new InvalidQuery(`${pyRepr(column.name)} is ${TYPE_ARTICLES[kind]} column: ${pyRepr(head(value, 50))} is not ${TYPE_EXPECTED[kind]}`);
}

// -- the grammar ----------------------------------------------------------------------------

function names(byName) {
  const all = [...byName.keys()];
  const shown = all.slice(0, 20).join(", ");
  return shown + (all.length > 20 ? ` and ${all.length - 20} more` : "");
}

function checkText(text, what) {
  if ([...text].length > MAX_VALUE_CHARS) {
    throw new InvalidQuery(`${what} is too long: at most ${MAX_VALUE_CHARS} characters`);
  }
}

function parseFilter(name, raw, byName) {
  const cut = name.indexOf("__");
  const columnName = cut < 0 ? name : name.slice(0, cut);
  let op = cut < 0 ? "eq" : name.slice(cut + 2);
  if (cut >= 0 && (!OPERATORS.includes(op) || op === "eq")) {
    throw new InvalidQuery(`unknown operator ${pyRepr(op)} in ${pyRepr(name)}; use one of ${OPERATORS.filter((o) => o !== "eq").join(", ")}`);
  }
  const column = byName.get(columnName);
  if (column === undefined) {
    throw new InvalidQuery(`unknown column ${pyRepr(columnName)}; columns are ${names(byName)}`);
  }
  if (TEXT_OPERATORS.has(op) && column.type !== "string") {
    throw new InvalidQuery(`__${op} works on string columns only; ${pyRepr(columnName)} is ${column.type}`);
  }
  if (op === "isnull") {
    const lowered = raw.toLowerCase();
    if (!Object.hasOwn(BOOLS, lowered)) throw new InvalidQuery(`${name} takes true or false, not ${pyRepr(head(raw, 50))}`);
    return { column: columnName, op, value: BOOLS[lowered] };
  }
  if (op === "in") {
    const items = raw.split(",");
    if (items.length > MAX_IN_VALUES) throw new InvalidQuery(`${name} lists too many values: at most ${MAX_IN_VALUES}`);
    return { column: columnName, op, value: items.map((item) => convert(item, column)) };
  }
  return { column: columnName, op, value: convert(raw, column) };
}

function parseSort(raw, byName) {
  if (raw === undefined) return [];
  const keys = [];
  for (const item of raw.split(",")) {
    const name = item.startsWith("-") ? item.slice(1) : item;
    if (!byName.has(name)) {
      throw new InvalidQuery(`_sort: unknown column ${pyRepr(name)}; write _sort=col or _sort=-col with columns from ${names(byName)}`);
    }
    if (keys.some((k) => k.column === name)) throw new InvalidQuery(`_sort lists ${pyRepr(name)} twice`);
    keys.push({ column: name, descending: item.startsWith("-") });
  }
  return keys;
}

function parseFields(raw, byName) {
  if (raw === undefined) return null;
  const fields = raw.split(",");
  for (const name of fields) {
    if (!byName.has(name)) throw new InvalidQuery(`_fields: unknown column ${pyRepr(name)}; columns are ${names(byName)}`);
  }
  if (new Set(fields).size !== fields.length) throw new InvalidQuery("_fields lists a column twice");
  return fields;
}

function parseCount(raw) {
  if (raw !== undefined && raw !== "exact") throw new InvalidQuery(`_count takes exact, not ${pyRepr(head(raw, 50))}`);
  return raw !== undefined;
}

function parseFacets(facets, byName) {
  if (facets.length > MAX_FACETS) throw new InvalidQuery(`too many _facet: at most ${MAX_FACETS}`);
  for (const name of facets) {
    if (!byName.has(name)) throw new InvalidQuery(`_facet: unknown column ${pyRepr(name)}; columns are ${names(byName)}`);
  }
  if (new Set(facets).size !== facets.length) throw new InvalidQuery("_facet lists a column twice");
  return facets;
}

function parseLimit(raw, maxLimit, defaultLimit) {
  if (raw === undefined) return Math.max(1, Math.min(defaultLimit, maxLimit));
  const digits = raw.replace(/^0+/, "") || "0";
  if (!/^[0-9]+$/.test(digits)) {
    throw new InvalidQuery(`_limit must be a whole number from 1 to ${maxLimit}, not ${pyRepr(head(raw, 50))}`);
  }
  if (digits.length > 12) return maxLimit;
  const limit = Number(digits);
  if (limit < 1) throw new InvalidQuery(`_limit must be at least 1, not ${pyRepr(head(raw, 50))}`);
  return Math.min(limit, maxLimit);
}

// orjson's text for the binding: compact JSON, non-ASCII as is (JSON.stringify agrees).
function binding(version, sort, q, pairs) {
  const sorted = [...pairs].sort((a, b) => compareText(a[0], b[0]) || compareText(a[1], b[1]));
  return JSON.stringify([version, sort, q, sorted]);
}

function b64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function unb64url(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function check(bindingText, payload) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${bindingText}.${payload}`));
  return b64url(new Uint8Array(digest).slice(0, 9));
}

// orjson's float text: like JavaScript's, but integral values keep ".0", -0 is "-0.0", and
// exponent notation starts at 1e16.
export function floatText(x) {
  if (Object.is(x, -0)) return "-0.0";
  if (Math.abs(x) >= 1e16) return x.toExponential();
  const text = String(x);
  return Number.isInteger(x) && !text.includes("e") ? `${text}.0` : text;
}

// JSON as orjson writes it, given which values are floats (number columns).
export function orjsonStringify(value, floats) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") return floats ? floatText(value) : String(value);
  if (Array.isArray(value)) return `[${value.map((v) => orjsonStringify(v, floats)).join(",")}]`;
  return JSON.stringify(value);
}

export async function encodeCursor(bindingText, values, rowid, floatFlags) {
  const k = values.map((v, i) => orjsonStringify(v, floatFlags[i])).join(",");
  const payload = b64url(new TextEncoder().encode(`{"k":[${k}],"r":${rowid}}`));
  return `${payload}.${await check(bindingText, payload)}`;
}

function cursorValue(value, column) {
  const kind = column.type;
  if (value === null) return null;
  if (kind === "integer" && Number.isInteger(value)) return value;
  if (kind === "number" && typeof value === "number" && Number.isFinite(value)) return value;
  if (kind === "boolean" && typeof value === "boolean") return value;
  if (kind === "string" && typeof value === "string") return value;
  if ((kind === "date" || kind === "timestamp") && typeof value === "string") {
    try {
      return convert(value, column);
    } catch {
      // fall through
    }
  }
  throw new InvalidQuery("invalid _cursor: unexpected content");
}

async function decodeCursor(raw, bindingText, sort, byName) {
  const cut = raw.indexOf(".");
  const payload = cut < 0 ? raw : raw.slice(0, cut);
  const sum = cut < 0 ? "" : raw.slice(cut + 1);
  if (cut < 0 || raw.length > MAX_CURSOR_CHARS || !B64URL_RE.test(payload) || sum !== (await check(bindingText, payload))) {
    throw new InvalidQuery("invalid _cursor: it was damaged, or issued for other filters, sort, search or dataset version; start again without _cursor");
  }
  let data;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(unb64url(payload)));
  } catch {
    throw new InvalidQuery("invalid _cursor: unreadable");
  }
  const keys = data && typeof data === "object" && !Array.isArray(data) ? Object.keys(data).sort() : [];
  if (keys.length !== 2 || keys[0] !== "k" || keys[1] !== "r") throw new InvalidQuery("invalid _cursor: unexpected content");
  const { k: values, r: rowid } = data;
  if (!Array.isArray(values) || values.length !== sort.length || !Number.isInteger(rowid) || rowid < 0) {
    throw new InvalidQuery("invalid _cursor: unexpected content");
  }
  return { values: values.map((v, i) => cursorValue(v, byName.get(sort[i].column))), rowid };
}

// parse_query: (name, value) pairs in request order -> query, or InvalidQuery.
export async function parseQuery(params, columns, { maxLimit, defaultLimit = DEFAULT_LIMIT, version = "", defaultFormat = null }) {
  const byName = new Map(columns.map((c) => [c.name, c]));
  const control = new Map();
  const filters = [];
  const pairs = [];
  const facetNames = [];
  for (const [name, raw] of params) {
    checkText(name, "a parameter name");
    checkText(raw, `the value of ${pyRepr(name)}`);
    if (name.startsWith("_")) {
      if (!CONTROL_PARAMS.includes(name)) {
        throw new InvalidQuery(`unknown parameter ${pyRepr(name)}; control parameters are ${CONTROL_PARAMS.join(", ")}`);
      }
      if (REPEATABLE_PARAMS.includes(name)) {
        facetNames.push(raw);
        continue;
      }
      if (control.has(name)) throw new InvalidQuery(`${name} given more than once`);
      control.set(name, raw);
      continue;
    }
    if (filters.length >= MAX_FILTERS) throw new InvalidQuery(`too many filters: at most ${MAX_FILTERS}`);
    filters.push(parseFilter(name, raw, byName));
    pairs.push([name, raw]);
  }
  const sort = parseSort(control.get("_sort"), byName);
  const fields = parseFields(control.get("_fields"), byName);
  const limit = parseLimit(control.get("_limit"), maxLimit, defaultLimit);
  const q = control.get("_q") || null;
  if (q !== null) {
    if ([...q].length > MAX_Q_CHARS) throw new InvalidQuery(`_q is too long: at most ${MAX_Q_CHARS} characters`);
    if (!columns.some((c) => c.type === "string")) {
      throw new InvalidQuery("_q needs a string column to search, and this dataset has none");
    }
  }
  const format = control.has("_format") ? control.get("_format") : defaultFormat || "json";
  if (!FORMATS.includes(format)) throw new InvalidQuery(`unknown _format ${pyRepr(format)}; use one of ${FORMATS.join(", ")}`);
  const bindingText = binding(version, control.get("_sort") ?? "", q ?? "", pairs);
  const after = control.has("_cursor") ? await decodeCursor(control.get("_cursor"), bindingText, sort, byName) : null;
  const count = parseCount(control.get("_count"));
  const facets = parseFacets(facetNames, byName);
  if ((count || facets.length) && format !== "json") {
    throw new InvalidQuery(`_count and _facet need the json format, not ${format}`);
  }
  return { filters, sort, fields, limit, q, format, after, binding: bindingText, count, facets };
}

// format_from_accept: the format an Accept header asks for; null when it names none we serve.
export function formatForAccept(accept) {
  if (!accept || !accept.trim()) return "json";
  let best = null;
  accept.split(",").forEach((part) => {
    const [media, ...options] = part.split(";").map((p) => p.trim());
    let weight = 1.0;
    for (const option of options) {
      const eq = option.indexOf("=");
      const key = eq < 0 ? option : option.slice(0, eq);
      const value = eq < 0 ? "" : option.slice(eq + 1);
      if (key.trim().toLowerCase() === "q") {
        const parsed = pyFloat(value);
        weight = parsed === null ? 0.0 : parsed;
      }
    }
    const type = media.toLowerCase();
    const format = MEDIA_TYPES[type] || (type === "*/*" || type === "application/*" ? "json" : null);
    if (format === null || !(weight > 0)) return;
    if (best === null || weight > best.weight) best = { weight, format };
  });
  return best ? best.format : null;
}

// Python float(text): surrounding whitespace allowed, underscores between digits, inf/nan.
function pyFloat(text) {
  const t = text.trim().replace(/(?<=[0-9])_(?=[0-9])/g, "");
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(t)) return NaN;
  return NUM_RE.test(t) ? Number(t) : null;
}
