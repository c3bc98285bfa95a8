"""A ready-to-pay local chain: anvil + ClawUSD + the x402 batch-settlement escrow + funded wallets.

`402claw dev`, `402claw demo` and the tests all start from here. Roles use anvil's dev
accounts, so their keys are well known and every one of them holds 10,000 ETH for gas:
0 deployer (token owner, mints), 1 facilitator (pays settlement gas), 2 treasury (the
`payTo` of paid calls), 3.. payers (hold test USDC, sign EIP-3009 authorizations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web3 import Web3
from web3.types import TxParams

from claw402.chain.anvil import DEFAULT_CHAIN_ID, Anvil
from claw402.chain.artifacts import load_artifact
from claw402.chain.channels import install_batch_settlement
from claw402.chain.token import DEFAULT_NAME, DEFAULT_SYMBOL, DEFAULT_VERSION, Token, usdc
from claw402.chain.tx import broadcast, build_call, connect, wait_for_receipt
from claw402.chain.wallet import Wallet
from claw402.lifecycle import Stops

# Where every public chain has Multicall3; the x402 SDK diagnoses failed payments through it.
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"
_FIXED_ROLES = 3  # deployer, facilitator, treasury
_MINT_GAS = 150_000  # a first mint (two zero-to-nonzero slots) costs ~75k


@dataclass
class DevChain(Stops):
    """Everything a paid call needs on the local chain. Stop it (or use `with`) when done."""

    anvil: Anvil
    token: str
    token_name: str
    token_version: str
    deployer: Wallet
    facilitator: Wallet
    treasury: Wallet
    payers: tuple[Wallet, ...]
    _w3: Web3 | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    @property
    def chain_id(self) -> int:
        return self.anvil.chain_id

    @property
    def network(self) -> str:
        """CAIP-2 id, e.g. `eip155:31337`."""
        return self.anvil.network

    @property
    def asset_extra(self) -> dict[str, str]:
        """The `extra` of x402 payment requirements for this token (its EIP-712 domain)."""
        return {"name": self.token_name, "version": self.token_version}

    def web3(self) -> Web3:
        if self._w3 is None:
            self._w3 = connect(self.rpc_url)
        return self._w3

    def token_contract(self) -> Token:
        return Token(self.web3(), self.token)

    def balance(self, address: str) -> int:
        """Test-USDC balance in atomic units (6 decimals)."""
        return self.token_contract().balance_of(address)

    def fund(self, address: str, amount: int, *, eth_wei: int = 0) -> None:
        """Mint `amount` atomic test-USDC to `address`, and send it `eth_wei` for gas."""
        w3 = self.web3()
        self.token_contract().mint(self.deployer.account, address, amount)
        if eth_wei:
            tx = TxParams(to=Web3.to_checksum_address(address), value=eth_wei, gas=21_000)
            wait_for_receipt(w3, broadcast(w3, self.deployer.account, tx))

    def stop(self) -> None:
        self.anvil.stop()

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (for `402claw dev --json` and logs); includes dev keys."""
        return {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "network": self.network,
            "token": self.token,
            "token_name": self.token_name,
            "token_version": self.token_version,
            "deployer": self.deployer._asdict(),
            "facilitator": self.facilitator._asdict(),
            "treasury": self.treasury._asdict(),
            "payers": [payer._asdict() for payer in self.payers],
        }


def start_dev_chain(
    *,
    payers: int = 3,
    payer_balance: int = usdc(1_000),
    treasury_balance: int = usdc(1_000),
    chain_id: int = DEFAULT_CHAIN_ID,
    port: int = 0,
    token_name: str = DEFAULT_NAME,
    token_symbol: str = DEFAULT_SYMBOL,
    token_version: str = DEFAULT_VERSION,
) -> DevChain:
    """Start anvil, deploy ClawUSD, install Multicall3 and the batch-settlement contracts
    (escrow + ERC-3009 collector, at the x402 SDK's addresses) and fund treasury and payers.

    Balances are atomic units (`usdc(1_000)` = 1,000 test dollars).
    """
    anvil = Anvil.start(chain_id=chain_id, port=port, accounts=max(10, _FIXED_ROLES + payers))
    try:
        wallets = [Wallet(a.address, a.private_key) for a in anvil.accounts]
        deployer, facilitator, treasury = wallets[:_FIXED_ROLES]
        payer_wallets = tuple(wallets[_FIXED_ROLES : _FIXED_ROLES + payers])
        w3 = connect(anvil.rpc_url)
        install_multicall3(w3)
        install_batch_settlement(w3)
        token = Token.deploy(
            w3, deployer.account, name=token_name, symbol=token_symbol, version=token_version
        )
        grants = [(treasury.address, treasury_balance)]
        grants += [(payer.address, payer_balance) for payer in payer_wallets]
        _mint_all(w3, token, deployer, [(to, amount) for to, amount in grants if amount > 0])
        return DevChain(
            anvil=anvil,
            token=token.address,
            token_name=token_name,
            token_version=token_version,
            deployer=deployer,
            facilitator=facilitator,
            treasury=treasury,
            payers=payer_wallets,
            _w3=w3,
        )
    except BaseException:
        anvil.stop()
        raise


def install_multicall3(w3: Web3) -> None:
    """Put a Multicall3 (tryAggregate/aggregate3) at its canonical address, if none is there."""
    if w3.eth.get_code(MULTICALL3_ADDRESS):
        return
    code = load_artifact("Multicall3").deployed_bytecode
    w3.provider.make_request("anvil_setCode", [MULTICALL3_ADDRESS, code])  # type: ignore[arg-type]


def _mint_all(w3: Web3, token: Token, minter: Wallet, grants: list[tuple[str, int]]) -> None:
    """Pipeline the mints with consecutive nonces, then wait for all receipts."""
    if not grants:
        return
    account = minter.account
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    hashes = []
    for offset, (to, amount) in enumerate(grants):
        call = token.contract.functions.mint(Web3.to_checksum_address(to), amount)
        tx = build_call(account, call, nonce=nonce + offset, gas=_MINT_GAS)
        hashes.append(broadcast(w3, account, tx))
    for tx_hash in hashes:
        wait_for_receipt(w3, tx_hash)
