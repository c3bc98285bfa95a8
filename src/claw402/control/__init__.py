"""The control plane: who may do what, and the audit log that remembers it.

One function per operation a front door offers (the CLI today, an HTTP API tomorrow): it
authorises the actor behind an API key, acts through the layer below and writes the audit
entries, so a front door only parses and prints.

- `tenants`: deploy (and publish), remove, list, show, events.
- `hosts`: verify a custom host by DNS, approve it.
- `money`: balance, payout wallet proof, withdraw, payouts, reconcile.
- `edge`: the Cloudflare directory, build, uploads and rollback.
- `access`: users, API keys, the audit log.

Under them: `authz` (scopes and ownership), `keys` (keys stored as SHA-256 only), `audit`
(append-only, hash-chained), `wallets` (EIP-191 proof of a payout address).
"""
