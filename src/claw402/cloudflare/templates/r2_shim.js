// An R2 bucket binding for workerd, which has none: `get(key)` reads the object from a workerd
// disk service (a folder holding the bucket's objects by key) and answers null when it is
// absent, as R2's get does. Only the part of the R2 API stored.js uses. Loaded as an internal
// workerd extension module, like namespace_shim.js.

class Bucket {
  constructor(env) {
    this.disk = env.disk;
  }

  async get(key) {
    const path = key.split("/").map(encodeURIComponent).join("/");
    const response = await this.disk.fetch(`http://r2/${path}`);
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`R2 get ${key}: ${response.status}`);
    const body = await response.arrayBuffer();
    const text = () => new TextDecoder().decode(body);
    return {
      key,
      size: body.byteLength,
      arrayBuffer: async () => body,
      text: async () => text(),
      json: async () => JSON.parse(text()),
    };
  }
}

export default function wrap(env) {
  return new Bucket(env);
}
