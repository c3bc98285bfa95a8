// tenant_api/manners.py and pages/render.prefers_html at the edge, for the tenant Worker
// (worker.js) and the dispatch Worker's pages (pages.js): a free document's ETag (the first
// 16 bytes of its SHA-256, hex; kept per text) and `If-None-Match`, and whether a request is a
// browser's navigation.

const TAGS = new Map();

export async function etag(text) {
  let tag = TAGS.get(text);
  if (tag === undefined) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
    tag = `"${[...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("")}"`;
    if (TAGS.size > 64) TAGS.clear();
    TAGS.set(text, tag);
  }
  return tag;
}

export function matches(ifNoneMatch, tag) {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(",").some((item) => {
    const t = item.trim();
    return t === "*" || (t.startsWith("W/") ? t.slice(2) : t) === tag;
  });
}

// A browser's navigation: text/html weighed at least as much as JSON.
export function prefersHtml(accept) {
  if (!accept || !accept.toLowerCase().includes("html")) return false;
  const weights = new Map();
  for (const part of accept.split(",")) {
    const [media, ...options] = part.split(";").map((p) => p.trim());
    let weight = 1.0;
    for (const option of options) {
      const at = option.indexOf("=");
      const key = (at < 0 ? option : option.slice(0, at)).trim().toLowerCase();
      if (key === "q") {
        const value = Number((at < 0 ? "" : option.slice(at + 1)).trim());
        weight = Number.isNaN(value) || at < 0 ? 0 : value;
      }
    }
    if (!weights.has(media.toLowerCase())) weights.set(media.toLowerCase(), weight);
  }
  const html = weights.get("text/html") ?? 0;
  return html > 0 && html >= (weights.get("application/json") ?? 0);
}
