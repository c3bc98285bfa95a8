// The dataset engine of a user Worker: src/claw402/datasets/engine.py over columns held in
// memory. Same answers: filters AND together, NULL is the largest value in a sort, ties and the
// default order follow the source row order, keyset cursors on (sort values..., row number).
// Values are in the gateway's output form: dates "YYYY-MM-DD", timestamps
// "YYYY-MM-DDTHH:MM:SS[.ffffff]".

import { FACET_SIZE } from "./grammar.js";
import { compareText, convert, encodeCursor, InvalidQuery } from "./query.js";

// Unicode simple lowercase (DuckDB's lower()): toLowerCase is the full mapping, which differs
// only for U+0130 and a context-sensitive final sigma.
export function lowerSimple(text) {
  const lowered = text.toLowerCase();
  if (!/[\u0130\u03a3]/.test(text)) return lowered;
  let out = "";
  for (const ch of text) out += ch === "\u0130" ? "i" : ch.toLowerCase();
  return out;
}

// A timestamp in output form -> the fixed-width text query.js compares with.
function timestampKey(text) {
  const key = text.replace("T", " ");
  return key.length === 19 ? `${key}.000000` : key;
}

function compareValues(type, a, b) {
  if (type === "string") return compareText(a, b);
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

export class Table {
  constructor(dataset) {
    this.columns = dataset.columns;
    this.count = dataset.rows;
    this.byName = new Map(this.columns.map((c, i) => [c.name, { ...c, index: i }]));
    this.data = dataset.data;
    this._keys = new Map(); // timestamp column -> comparable keys
    this._text = null; // lowercased string columns joined by U+001F (the `_text` column)
    this._index = null; // key column value -> row
  }

  // Values of a column as compared: timestamps become fixed-width keys.
  values(name) {
    const column = this.byName.get(name);
    if (column.type !== "timestamp") return this.data[column.index];
    if (!this._keys.has(name)) {
      this._keys.set(name, this.data[column.index].map((v) => (v === null ? null : timestampKey(v))));
    }
    return this._keys.get(name);
  }

  text() {
    if (this._text === null) {
      const strings = this.columns.filter((c) => c.type === "string").map((c) => this.data[this.byName.get(c.name).index]);
      this._text = new Array(this.count);
      for (let i = 0; i < this.count; i++) {
        const parts = [];
        for (const column of strings) if (column[i] !== null) parts.push(column[i]);
        this._text[i] = lowerSimple(parts.join("\x1f"));
      }
    }
    return this._text;
  }

  predicate(filter) {
    const { type } = this.byName.get(filter.column);
    const values = this.values(filter.column);
    const v = filter.value;
    const cmp = (x) => compareValues(type, x, v);
    switch (filter.op) {
      case "eq": return (i) => values[i] !== null && cmp(values[i]) === 0;
      case "ne": return (i) => values[i] === null || cmp(values[i]) !== 0;
      case "gt": return (i) => values[i] !== null && cmp(values[i]) > 0;
      case "gte": return (i) => values[i] !== null && cmp(values[i]) >= 0;
      case "lt": return (i) => values[i] !== null && cmp(values[i]) < 0;
      case "lte": return (i) => values[i] !== null && cmp(values[i]) <= 0;
      case "contains": return (i) => values[i] !== null && values[i].includes(v);
      case "icontains": {
        const needle = lowerSimple(v);
        return (i) => values[i] !== null && lowerSimple(values[i]).includes(needle);
      }
      case "startswith": return (i) => values[i] !== null && values[i].startsWith(v);
      case "in": return (i) => values[i] !== null && v.some((item) => compareValues(type, values[i], item) === 0);
      case "isnull": return (i) => (values[i] === null) === v;
      default: throw new InvalidQuery(`unknown operator '${filter.op}'`);
    }
  }

  search(q) {
    const needle = lowerSimple(q);
    if (q.includes("\x1f")) {
      const strings = this.columns.filter((c) => c.type === "string").map((c) => this.data[this.byName.get(c.name).index]);
      return (i) => strings.some((column) => column[i] !== null && lowerSimple(column[i]).includes(needle));
    }
    const text = this.text();
    return (i) => text[i].includes(needle);
  }

  // Order on (sort keys..., row number); NULL is the largest value.
  comparator(sort) {
    const keys = sort.map((k) => ({ type: this.byName.get(k.column).type, values: this.values(k.column), sign: k.descending ? -1 : 1 }));
    const one = (key, a, b) => {
      if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
      return compareValues(key.type, a, b);
    };
    return {
      rows: (i, j) => {
        for (const key of keys) {
          const c = one(key, key.values[i], key.values[j]);
          if (c !== 0) return c * key.sign;
        }
        return i - j;
      },
      after: (i, values, rowid) => {
        for (let n = 0; n < keys.length; n++) {
          const c = one(keys[n], keys[n].values[i], values[n]);
          if (c !== 0) return c * keys[n].sign;
        }
        return i - rowid;
      },
    };
  }

  // The rows the filters and _q keep, as a test of a row number.
  matcher(query) {
    const tests = query.filters.map((f) => this.predicate(f));
    if (query.q) tests.push(this.search(query.q));
    return (i) => tests.every((test) => test(i));
  }

  // datasets/facets.py: {count} and {facets: {col: [{value, count}]}} over every matching row
  // (the cursor ignored); the FACET_SIZE most frequent values, ties by value, NULL last.
  summary(query) {
    if (!query.count && query.facets.length === 0) return {};
    return rankSummary(this.tally(query), query, this.byName);
  }

  // What `summary` counts, before ranking: the matching rows and, per facet, compared value ->
  // [output value, count, compared value]; tallies of several tables add up (stored.js).
  tally(query, into = emptyTally(query)) {
    const matches = this.matcher(query);
    const rows = [];
    for (let i = 0; i < this.count; i++) if (matches(i)) rows.push(i);
    into.count += rows.length;
    for (const [name, found] of into.facets) {
      const { index } = this.byName.get(name);
      const keys = this.values(name);
      for (const i of rows) {
        const seen = found.get(keys[i]);
        if (seen) seen[1] += 1;
        else found.set(keys[i], [this.data[index][i], 1, keys[i]]);
      }
    }
    return into;
  }

  async records(query) {
    const matches = this.matcher(query);
    const want = query.limit + 1;
    let rows;
    if (query.sort.length === 0) {
      rows = [];
      for (let i = query.after ? query.after.rowid + 1 : 0; i < this.count && rows.length < want; i++) {
        if (matches(i)) rows.push(i);
      }
    } else {
      const order = this.comparator(query.sort);
      const after = query.after;
      rows = topN(this.count, (i) => matches(i) && (!after || order.after(i, after.values, after.rowid) > 0), order.rows, want);
    }
    const names = query.fields || this.columns.map((c) => c.name);
    let next = null;
    if (rows.length > query.limit) {
      rows = rows.slice(0, query.limit);
      const last = rows[rows.length - 1];
      const values = query.sort.map((k) => this.data[this.byName.get(k.column).index][last]);
      const floats = query.sort.map((k) => this.byName.get(k.column).type === "number");
      next = await encodeCursor(query.binding, values, last, floats);
    }
    const columns = names.map((name) => this.data[this.byName.get(name).index]);
    return { columns: names, types: names.map((n) => this.byName.get(n).type), rows: rows.map((i) => columns.map((c) => c[i])), next };
  }

  // The row (values in column order) whose key is `text` (as in a URL); null when none, or when
  // the text cannot be a value of the key's type.
  record(key, text) {
    const column = this.byName.get(key);
    let value;
    try {
      value = convert(text, column);
    } catch (error) {
      if (error instanceof InvalidQuery) return null;
      throw error;
    }
    if (this._index === null) {
      this._index = new Map();
      const values = this.values(key);
      for (let i = 0; i < this.count; i++) this._index.set(values[i], i);
    }
    const row = this._index.get(value);
    if (row === undefined) return null;
    return this.columns.map((c, n) => this.data[n][row]);
  }
}

// The first `n` matching rows in `compare` order, without sorting every match.
function topN(count, matches, compare, n) {
  const heap = []; // a max-heap: the worst kept row on top
  const worse = (a, b) => compare(a, b) > 0;
  for (let i = 0; i < count; i++) {
    if (!matches(i)) continue;
    if (heap.length < n) {
      heap.push(i);
      let c = heap.length - 1;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(heap[c], heap[p])) break;
        [heap[c], heap[p]] = [heap[p], heap[c]];
        c = p;
      }
    } else if (worse(heap[0], i)) {
      heap[0] = i;
      let p = 0;
      for (;;) {
        const l = 2 * p + 1;
        const r = l + 1;
        let m = p;
        if (l < heap.length && worse(heap[l], heap[m])) m = l;
        if (r < heap.length && worse(heap[r], heap[m])) m = r;
        if (m === p) break;
        [heap[m], heap[p]] = [heap[p], heap[m]];
        p = m;
      }
    }
  }
  return heap.sort(compare);
}

export function emptyTally(query) {
  return { count: 0, facets: new Map(query.facets.map((name) => [name, new Map()])) };
}

// A tally (Table.tally) as the answer's extras: the count if asked, each facet's top values.
export function rankSummary(tally, query, byName) {
  const extras = {};
  if (query.count) extras.count = tally.count;
  if (query.facets.length) {
    extras.facets = {};
    for (const [name, found] of tally.facets) {
      const { type } = byName.get(name);
      const top = [...found.values()].sort((a, b) => {
        if (a[1] !== b[1]) return b[1] - a[1];
        if (a[2] === null || b[2] === null) return a[2] === b[2] ? 0 : a[2] === null ? 1 : -1;
        return compareValues(type, a[2], b[2]);
      });
      extras.facets[name] = { type, top: top.slice(0, FACET_SIZE).map(([value, count]) => ({ value, count })) };
    }
  }
  return extras;
}
