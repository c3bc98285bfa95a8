// A dispatch-namespace binding for workerd, which has none: `env.DISPATCHER.get(name, args,
// options)` like Workers for Platforms. Inner bindings map script names to services; a missing
// name throws "Worker not found." on fetch, as production does. Limits are not enforced
// locally: every get() is recorded (name, args, options) through the recorder service so tests
// can assert what the dispatcher asked for. Loaded as an internal workerd extension module.

const RECORDER = "__claw402_recorder";

function checkLimits(options) {
  const limits = options && options.limits;
  if (limits === undefined) return;
  if (typeof limits !== "object" || limits === null) throw new TypeError("limits must be an object");
  for (const key of ["cpuMs", "subRequests"]) {
    const value = limits[key];
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new TypeError(`limits.${key} must be a positive integer, got ${value}`);
    }
  }
}

class DispatchNamespace {
  constructor(env) {
    this.env = env;
  }

  get(name, args = {}, options = {}) {
    if (typeof name !== "string" || name === "") throw new TypeError("a script name is required");
    checkLimits(options);
    const service = name === RECORDER ? undefined : this.env[name];
    const recorder = this.env[RECORDER];
    const record = { name, args: args ?? null, options: options ?? null, found: Boolean(service) };
    return {
      fetch: async (input, init) => {
        if (recorder) {
          await recorder.fetch("http://recorder/dispatches", { method: "POST", body: JSON.stringify(record) });
        }
        if (!service) throw new Error("Worker not found.");
        return service.fetch(input, init);
      },
    };
  }
}

export default function wrap(env) {
  return new DispatchNamespace(env);
}
