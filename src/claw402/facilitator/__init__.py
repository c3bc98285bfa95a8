"""The facilitator layer: x402 `/supported`, `/verify`, `/settle` over HTTP for one EVM chain.

- `settings.FacilitatorSettings`: rpc_url, private key, network, optional API key.
- `service.FacilitatorService`: the SDK's exact-EVM facilitator plus network, replay and
  concurrency policy.
- `app.create_app(settings)`: the Starlette app.
- `server.serve(settings, host, port)` / `server.background_server(settings)`: run it.
- `client.facilitator_config(url, api_key)`: config for the SDK's `HTTPFacilitatorClient`.
"""
