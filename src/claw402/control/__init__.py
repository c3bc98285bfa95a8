"""The control plane: users, scoped API keys, payout-wallet proofs, the hash-chained audit log.

- `authz.authorize(engine, key, scope) -> Actor` and `authz.require_owner(...)`.
- `keys`: create users, issue / rotate / revoke keys (stored as SHA-256 only).
- `audit`: `append` inside an action's transaction, `entries`, `verify`.
- `wallets`: EIP-191 challenge and proof of a tenant's payout address.
- `tenants.begin_change(...)`: authorise and audit a deploy or removal.
"""
