// Test-side recorder for the local runtime: POST /<channel> appends a JSON record (or the
// records in {"events": [...]}), GET /<channel> lists them, DELETE /<channel> clears them.
// State lives in the isolate, which workerd keeps for the life of the process.

const channels = new Map();

export default {
  async fetch(request) {
    const channel = new URL(request.url).pathname.replace(/^\/+/, "") || "default";
    const list = channels.get(channel) || [];
    if (request.method === "POST") {
      const body = await request.json();
      const items = body && Array.isArray(body.events) ? body.events : [body];
      channels.set(channel, list.concat(items));
      return new Response(null, { status: 204 });
    }
    if (request.method === "DELETE") {
      channels.delete(channel);
      return new Response(null, { status: 204 });
    }
    return new Response(JSON.stringify(list), { headers: { "content-type": "application/json" } });
  },
};
