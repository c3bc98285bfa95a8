"""ClawUSD on a chain: deploy it, mint it, read balances, move it (plainly or by EIP-3009)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from claw402.chain.artifacts import load_artifact
from claw402.chain.eip3009 import Authorization, Domain, split_signature
from claw402.chain.tx import send, transact

# USDC's EIP-712 domain on Base mainnet: x402 clients sign against these by default.
DEFAULT_NAME = "USD Coin"
DEFAULT_SYMBOL = "USDC"
DEFAULT_VERSION = "2"
DECIMALS = 6


def usdc(amount: int | float | str) -> int:
    """Whole dollars to atomic units: `usdc("1.5") == 1_500_000`."""
    from decimal import Decimal

    atomic = Decimal(str(amount)) * 10**DECIMALS
    if atomic != atomic.to_integral_value():
        raise ValueError(f"{amount} has more than {DECIMALS} decimals")
    return int(atomic)


class Token:
    """A deployed ClawUSD contract, bound to one web3 connection."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(
            address=self.address, abi=load_artifact("ClawUSD").abi
        )

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        deployer: LocalAccount,
        *,
        name: str = DEFAULT_NAME,
        symbol: str = DEFAULT_SYMBOL,
        version: str = DEFAULT_VERSION,
    ) -> Token:
        """Deploy a new token; `deployer` becomes its owner (and so may mint)."""
        artifact = load_artifact("ClawUSD")
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(name, symbol, version).build_transaction(
            {"from": deployer.address}
        )
        receipt = send(w3, deployer, tx)
        return cls(w3, str(receipt["contractAddress"]))

    # --- reads ---

    def name(self) -> str:
        return self.contract.functions.name().call()

    def symbol(self) -> str:
        return self.contract.functions.symbol().call()

    def version(self) -> str:
        return self.contract.functions.version().call()

    def decimals(self) -> int:
        return self.contract.functions.decimals().call()

    def owner(self) -> str:
        return self.contract.functions.owner().call()

    def total_supply(self) -> int:
        return self.contract.functions.totalSupply().call()

    def balance_of(self, address: str) -> int:
        return self.contract.functions.balanceOf(to_checksum_address(address)).call()

    def domain_separator(self) -> bytes:
        return bytes(self.contract.functions.DOMAIN_SEPARATOR().call())

    def domain(self) -> Domain:
        """The EIP-712 domain read from the chain (what payers must sign against)."""
        return Domain(
            name=self.name(),
            version=self.version(),
            chain_id=self.w3.eth.chain_id,
            verifying_contract=self.address,
        )

    def authorization_state(self, authorizer: str, nonce: bytes) -> bool:
        """True once the nonce was used or canceled."""
        return self.contract.functions.authorizationState(
            to_checksum_address(authorizer), nonce
        ).call()

    # --- writes (each waits for its receipt) ---

    def mint(self, minter: LocalAccount, to: str, amount: int) -> TxReceipt:
        return self._send(minter, self.contract.functions.mint(to_checksum_address(to), amount))

    def configure_minter(self, owner: LocalAccount, minter: str, allowed: bool) -> TxReceipt:
        call = self.contract.functions.configureMinter(to_checksum_address(minter), allowed)
        return self._send(owner, call)

    def transfer(self, sender: LocalAccount, to: str, amount: int) -> TxReceipt:
        return self._send(sender, self.contract.functions.transfer(to_checksum_address(to), amount))

    def transfer_with_authorization(
        self,
        submitter: LocalAccount,
        authorization: Authorization,
        signature: bytes,
        *,
        packed: bool = False,
    ) -> TxReceipt:
        """Submit a signed authorization; `packed` uses the `bytes signature` overload."""
        fn = self.contract.functions.transferWithAuthorization
        return self._send(submitter, fn(*_authorization_args(authorization, signature, packed)))

    def receive_with_authorization(
        self,
        payee: LocalAccount,
        authorization: Authorization,
        signature: bytes,
        *,
        packed: bool = False,
    ) -> TxReceipt:
        """Like `transfer_with_authorization`, but only the payee (`to`) may submit it."""
        fn = self.contract.functions.receiveWithAuthorization
        return self._send(payee, fn(*_authorization_args(authorization, signature, packed)))

    def cancel_authorization(
        self,
        submitter: LocalAccount,
        authorizer: str,
        nonce: bytes,
        signature: bytes,
        *,
        packed: bool = False,
    ) -> TxReceipt:
        """Burn an unused nonce so the matching authorization can never be submitted."""
        fn = self.contract.functions.cancelAuthorization
        who = to_checksum_address(authorizer)
        if packed:
            return self._send(submitter, fn(who, nonce, signature))
        return self._send(submitter, fn(who, nonce, *split_signature(signature)))

    def _send(self, sender: LocalAccount, call: ContractFunction) -> TxReceipt:
        return transact(self.w3, sender, call)


def _authorization_args(
    authorization: Authorization, signature: bytes, packed: bool
) -> tuple[object, ...]:
    head = (
        to_checksum_address(authorization.from_address),
        to_checksum_address(authorization.to),
        authorization.value,
        authorization.valid_after,
        authorization.valid_before,
        authorization.nonce,
    )
    return (*head, signature) if packed else (*head, *split_signature(signature))
