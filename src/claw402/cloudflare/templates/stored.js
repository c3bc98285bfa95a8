// A dataset too large to embed (src/claw402/cloudflare/storage.py): its rows are chunks in R2,
// each in the embedded form, and the same engine (engine.js `Table`) runs over one chunk at a
// time. Answers and cursors are the embedded Worker's: row numbers are global (a chunk's
// offset + its row), a sorted page merges each chunk's best rows under the same order.

import { emptyTally, rankSummary, Table } from "./engine.js";
import { compareText, encodeCursor } from "./query.js";

// Parsed chunks kept per isolate: at storage.CHUNK_BYTES each costs ~7x its JSON in heap, so
// three leave room in the 128 MB isolate for a parse in flight and the answer. A scan over
// more chunks than this reads and parses them again (bench/bench_edge_r2.py).
const CACHED_CHUNKS = 3;

function compareKey(type, a, b) {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1; // NULL is largest
  if (type === "string") return compareText(a, b);
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

export class StoredTable {
  constructor(manifest, bucket) {
    if (!bucket) throw new Error(`R2 binding ${manifest.r2.binding} is missing`);
    this.columns = manifest.columns;
    this.count = manifest.rows;
    this.chunks = manifest.r2.chunks;
    this.bucket = bucket;
    this.byName = new Map(this.columns.map((c, i) => [c.name, { ...c, index: i }]));
    this.cache = new Map(); // chunk number -> Table, oldest first
  }

  async chunk(n) {
    const cached = this.cache.get(n);
    if (cached !== undefined) {
      this.cache.delete(n);
      this.cache.set(n, cached);
      return cached;
    }
    const { key } = this.chunks[n];
    const object = await this.bucket.get(key);
    if (object === null) throw new Error(`dataset chunk ${key} is missing from the R2 bucket`);
    const table = new Table(await object.json());
    this.cache.set(n, table);
    if (this.cache.size > CACHED_CHUNKS) this.cache.delete(this.cache.keys().next().value);
    return table;
  }

  static matcher(table, query) {
    const tests = query.filters.map((f) => table.predicate(f));
    if (query.q) tests.push(table.search(query.q));
    return (i) => tests.every((test) => test(i));
  }

  // One row of a chunk as a page needs it: output values, sort keys (compared), raw sort values
  // (the cursor), the global row number.
  static pick(table, i, offset, names, sort) {
    const raw = (name) => table.data[table.byName.get(name).index][i];
    return {
      row: names.map(raw),
      keys: sort.map((k) => table.values(k.column)[i]),
      raw: sort.map((k) => raw(k.column)),
      rowid: offset + i,
    };
  }

  async records(query) {
    const want = query.limit + 1;
    const names = query.fields || this.columns.map((c) => c.name);
    const after = query.after;
    let picks = [];
    if (query.sort.length === 0) {
      const start = after ? after.rowid + 1 : 0;
      for (let n = 0; n < this.chunks.length && picks.length < want; n++) {
        const { offset, rows } = this.chunks[n];
        if (offset + rows <= start) continue;
        const table = await this.chunk(n);
        const matches = StoredTable.matcher(table, query);
        for (let i = Math.max(0, start - offset); i < rows && picks.length < want; i++) {
          if (matches(i)) picks.push(StoredTable.pick(table, i, offset, names, []));
        }
      }
    } else {
      const types = query.sort.map((k) => this.byName.get(k.column).type);
      const order = (a, b) => {
        for (let n = 0; n < types.length; n++) {
          const c = compareKey(types[n], a.keys[n], b.keys[n]);
          if (c !== 0) return query.sort[n].descending ? -c : c;
        }
        return a.rowid - b.rowid;
      };
      for (let n = 0; n < this.chunks.length; n++) {
        const { offset, rows } = this.chunks[n];
        const table = await this.chunk(n);
        const matches = StoredTable.matcher(table, query);
        const local = table.comparator(query.sort);
        const best = [];
        for (let i = 0; i < rows; i++) {
          if (!matches(i)) continue;
          // the row number breaks ties: local to this chunk on both sides
          if (after && local.after(i, after.values, after.rowid - offset) <= 0) continue;
          best.push(i);
        }
        best.sort(local.rows);
        for (const i of best.slice(0, want)) picks.push(StoredTable.pick(table, i, offset, names, query.sort));
        picks.sort(order);
        picks = picks.slice(0, want);
      }
    }
    let next = null;
    if (picks.length > query.limit) {
      picks = picks.slice(0, query.limit);
      const last = picks[picks.length - 1];
      const floats = query.sort.map((k) => this.byName.get(k.column).type === "number");
      next = await encodeCursor(query.binding, last.raw, last.rowid, floats);
    }
    return { columns: names, types: names.map((n) => this.byName.get(n).type), rows: picks.map((p) => p.row), next };
  }

  // `_count` and `_facet` over every chunk: the chunks' tallies added, then ranked once.
  async summary(query) {
    if (!query.count && query.facets.length === 0) return {};
    const tally = emptyTally(query);
    for (let n = 0; n < this.chunks.length; n++) (await this.chunk(n)).tally(query, tally);
    return rankSummary(tally, query, this.byName);
  }

  // The row whose key is `text`, looked for chunk by chunk; null when none.
  async record(key, text) {
    for (let n = 0; n < this.chunks.length; n++) {
      const row = (await this.chunk(n)).record(key, text);
      if (row !== null) return row;
    }
    return null;
  }
}
