// Path text rules shared by the dispatch Worker and the user Workers.

// urllib.parse.unquote: %XX decoded as UTF-8 with replacement, malformed escapes kept (what an
// ASGI server does to the path before the gateway sees it).
export function unquote(text) {
  if (!text.includes("%")) return text;
  const bytes = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < text.length; ) {
    if (text[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const ch = String.fromCodePoint(text.codePointAt(i));
      bytes.push(...encoder.encode(ch));
      i += ch.length;
    }
  }
  return new TextDecoder("utf-8").decode(new Uint8Array(bytes));
}

// A decoded path, encoded per segment so no URL parser re-reads it ("..", "%", "?", "#").
export function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}
