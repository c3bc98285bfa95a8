"""Durable state for x402 `batch-settlement` channels (pay once, call many times).

`storage.SqlChannelStorage` is the SDK's `ChannelStorage` on the registry database, so every
gateway process sharing that database sees one channel state. Import the modules directly:
`storage` imports the x402 SDK, this package does not.
"""
