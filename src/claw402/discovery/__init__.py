"""How agents find what tenants sell: the Bazaar extension of every 402, the facilitator's
catalogue and the `/.well-known/x402` manifest."""
