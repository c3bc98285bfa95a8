"""The chain layer: a local dev chain and 402claw's own EIP-3009 test dollar.

- `anvil.Anvil`: start/stop an anvil node on a free port.
- `devchain.start_dev_chain()`: anvil + ClawUSD + funded treasury and payers, one call.
- `token.Token`: deploy, mint, read and move ClawUSD with web3.
- `eip3009`: sign transfer/receive/cancel authorizations by hand.
- `build`: `python -m claw402.chain.build` recompiles `contracts/` into `artifacts/`.

Modules are imported explicitly (web3 costs ~1 s to import; the CLI should not pay it for
commands that never touch a chain).
"""
