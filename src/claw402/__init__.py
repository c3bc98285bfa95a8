"""402claw: deploy your data, get a paid API. One command."""

import os as _os

__version__ = "0.1.0"

# eth-hash (every keccak of eth_utils, eth_account, web3 and the x402 SDK: addresses' checksums,
# EIP-712 digests, channel ids) takes its first installed backend, pycryptodome, whose cffi
# wrappers cost ~20x the C hash of safe-pysha3 (a dependency); its documented switch is this
# variable, read on the first hash. An explicit choice in the environment is kept, and
# without safe-pysha3 eth-hash keeps choosing for itself.
try:
    import sha3 as _sha3  # noqa: F401  (safe-pysha3: the backend must be importable)
except ImportError:  # pragma: no cover - a declared dependency
    pass
else:
    _os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
