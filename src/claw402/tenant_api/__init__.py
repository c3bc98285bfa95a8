"""The tenant-API core, runtime-neutral: one tenant's data API as plain calls and answers.

A call (`call.TenantCall`) goes through an ordered list of steps and comes back as an
`answer.Answer` (status, headers, bytes). The gateway adapts it to ASGI, the paywall guards
it, and the Worker generator renders the same documents (`documents`) into a user Worker.
Nothing here knows ASGI, Starlette or Cloudflare.
"""
