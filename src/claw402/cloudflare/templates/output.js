// Pages as bodies, byte for byte what src/claw402/datasets/output.py writes: JSON and NDJSON as
// orjson does, CSV as Python's csv module does (RFC 4180, CRLF, minimal quoting), with cells
// that a spreadsheet would run as a formula prefixed by "'".

import { MEDIA_TYPE } from "./grammar.js";
import { floatText } from "./query.js";

export { MEDIA_TYPE };
const FORMULA_START = /^[=+\-@\t\r]/;

function valueJson(value, type) {
  if (value === null || value === undefined) return "null";
  if (type === "number") return floatText(value);
  return JSON.stringify(value);
}

// One row as the JSON object orjson writes (arrays, not a JS object: a column named "2024"
// must keep its place).
export function rowJson(names, types, row) {
  return `{${names.map((name, i) => `${JSON.stringify(name)}:${valueJson(row[i], types[i])}`).join(",")}}`;
}

// Python's repr() of a float (what csv.writer writes for a number column).
export function pyFloatRepr(x) {
  if (Object.is(x, -0)) return "-0.0";
  const [mantissa, exp] = x.toExponential().split("e");
  const e = Number(exp);
  if (e >= -4 && e < 16) {
    const text = String(x); // fixed notation in this range, shortest digits like Python
    return text.includes(".") ? text : `${text}.0`;
  }
  const sign = e < 0 ? "-" : "+";
  return `${mantissa}e${sign}${String(Math.abs(e)).padStart(2, "0")}`;
}

function cell(value, type) {
  if (value === null || value === undefined) return "";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number") return type === "number" ? pyFloatRepr(value) : String(value);
  return FORMULA_START.test(value) ? `'${value}` : value;
}

function csvField(text) {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvRow(cells) {
  if (cells.length === 1 && cells[0] === "") return '""'; // csv.writer's one empty field
  return cells.map(csvField).join(",");
}

// Table.summary's {count, facets} as the JSON members that follow "next".
function extrasJson(extras) {
  let text = "";
  if (extras.count !== undefined) text += `,"count":${extras.count}`;
  if (extras.facets !== undefined) {
    const members = Object.entries(extras.facets).map(([name, { type, top }]) =>
      `${JSON.stringify(name)}:[${top.map((f) => `{"value":${valueJson(f.value, type)},"count":${f.count}}`).join(",")}]`);
    text += `,"facets":{${members.join(",")}}`;
  }
  return text;
}

// {columns, types, rows, next} (and the summary's extras) -> {body, contentType}
export function render(page, format, extras = {}) {
  const { columns, types, rows } = page;
  let body;
  if (format === "json") {
    const items = rows.map((row) => rowJson(columns, types, row)).join(",");
    body = `{"ok":true,"items":[${items}],"next":${page.next === null ? "null" : JSON.stringify(page.next)}${extrasJson(extras)}}`;
  } else if (format === "ndjson") {
    body = rows.map((row) => rowJson(columns, types, row) + "\n").join("");
  } else {
    const lines = [csvRow(columns.map((name) => cell(name, "string")))];
    for (const row of rows) lines.push(csvRow(row.map((value, i) => cell(value, types[i]))));
    body = lines.join("\r\n") + "\r\n";
  }
  return { body, contentType: MEDIA_TYPE[format] };
}
