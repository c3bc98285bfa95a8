// 402claw edge paywall, used by dispatcher.js for priced routes.
// Without a facilitator configured a priced route cannot be served: answer 402, never data
// (the gateway's unpriced_guard).

export async function guard(call, produce) {
  const { tenant, requestId, resourceUrl } = call;
  const body = {
    ok: false,
    error: "payment_required",
    requestId,
    detail: `${resourceUrl} costs $${tenant.price} per call; this dispatcher has no payment ` +
      "network configured (build it with a facilitator URL)",
  };
  return new Response(JSON.stringify(body), { status: 402, headers: { "content-type": "application/json" } });
}
