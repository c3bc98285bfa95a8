"""ClawUSD on a real anvil: ERC-20 basics, minting rights and every EIP-3009 path."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from claw402.chain.devchain import DevChain
from claw402.chain.eip3009 import Authorization, Domain, sign_authorization, sign_cancel
from claw402.chain.token import Token, usdc
from claw402.chain.wallet import Wallet

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def token(chain: DevChain) -> Token:
    return chain.token_contract()


@pytest.fixture(scope="module")
def domain(token: Token) -> Domain:
    return token.domain()


def _events(token: Token, receipt: dict, name: str) -> list[dict]:
    event = getattr(token.contract.events, name)()
    return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]


def test_metadata_matches_usdc(token: Token, chain: DevChain) -> None:
    assert (token.name(), token.symbol(), token.version(), token.decimals()) == (
        "USD Coin",
        "USDC",
        "2",
        6,
    )
    fields, name, version, chain_id, contract, salt, extensions = (
        token.contract.functions.eip712Domain().call()
    )
    assert (fields, name, version, chain_id, contract) == (
        b"\x0f",
        "USD Coin",
        "2",
        chain.chain_id,
        token.address,
    )
    assert salt == b"\x00" * 32 and extensions == []


def test_domain_separator_is_standard_eip712(token: Token, domain: Domain) -> None:
    domain_type = (
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        keccak(domain_type)
        + keccak(text=domain.name)
        + keccak(text=domain.version)
        + domain.chain_id.to_bytes(32, "big")
        + bytes.fromhex(domain.verifying_contract[2:]).rjust(32, b"\0")
    )
    assert token.domain_separator() == expected


def test_mint_is_owner_or_minter_only(chain: DevChain, token: Token) -> None:
    outsider = chain.payers[0].account
    with pytest.raises(ContractLogicError, match="caller is not a minter"):
        token.mint(outsider, outsider.address, 1)
    owner = chain.deployer.account
    token.configure_minter(owner, outsider.address, True)
    try:
        before = token.balance_of(outsider.address)
        token.mint(outsider, outsider.address, 7)
        assert token.balance_of(outsider.address) == before + 7
    finally:
        token.configure_minter(owner, outsider.address, False)
    with pytest.raises(ContractLogicError, match="caller is not a minter"):
        token.mint(outsider, outsider.address, 1)


def test_plain_transfer_and_insufficient_balance(chain: DevChain, token: Token) -> None:
    payer, payee = chain.payers[0], Wallet.create()
    token.transfer(payer.account, payee.address, usdc("0.25"))
    assert token.balance_of(payee.address) == 250_000
    with pytest.raises(ContractLogicError, match="transfer amount exceeds balance"):
        token.transfer(payee.account, payer.address, 250_001)


@pytest.mark.parametrize("packed", [False, True], ids=["v-r-s", "bytes-signature"])
def test_transfer_with_authorization_moves_funds_once(
    chain: DevChain, token: Token, domain: Domain, packed: bool
) -> None:
    payer, payee = chain.payers[1], Wallet.create()
    submitter = chain.facilitator.account
    auth = Authorization.new(payer.address, payee.address, usdc("1.5"))
    signature = sign_authorization(payer.private_key, auth, domain)
    payer_before = token.balance_of(payer.address)
    assert not token.authorization_state(payer.address, auth.nonce)

    receipt = token.transfer_with_authorization(submitter, auth, signature, packed=packed)

    assert token.balance_of(payee.address) == 1_500_000
    assert token.balance_of(payer.address) == payer_before - 1_500_000
    assert token.authorization_state(payer.address, auth.nonce)
    assert _events(token, receipt, "AuthorizationUsed") == [
        {"authorizer": payer.address, "nonce": auth.nonce}
    ]
    assert _events(token, receipt, "Transfer") == [
        {"from": payer.address, "to": payee.address, "value": 1_500_000}
    ]
    with pytest.raises(ContractLogicError, match="authorization is used or canceled"):
        token.transfer_with_authorization(submitter, auth, signature, packed=packed)


def test_expired_and_not_yet_valid_authorizations_fail(
    chain: DevChain, token: Token, domain: Domain
) -> None:
    payer, payee = chain.payers[1], Wallet.create()
    now = int(time.time())
    expired = Authorization(payer.address, payee.address, 1, 0, now - 10, b"\x01" * 32)
    future = Authorization(payer.address, payee.address, 1, now + 3600, now + 7200, b"\x02" * 32)
    submitter = chain.facilitator.account
    with pytest.raises(ContractLogicError, match="authorization is expired"):
        token.transfer_with_authorization(
            submitter, expired, sign_authorization(payer.private_key, expired, domain)
        )
    with pytest.raises(ContractLogicError, match="authorization is not yet valid"):
        token.transfer_with_authorization(
            submitter, future, sign_authorization(payer.private_key, future, domain)
        )
    assert token.balance_of(payee.address) == 0


def test_wrong_signer_tampered_value_and_malleable_signature_fail(
    chain: DevChain, token: Token, domain: Domain
) -> None:
    payer, thief = chain.payers[1], chain.payers[2]
    submitter = chain.facilitator.account
    auth = Authorization.new(payer.address, thief.address, 100)

    by_thief = sign_authorization(thief.private_key, auth, domain)
    with pytest.raises(ContractLogicError, match="invalid signature"):
        token.transfer_with_authorization(submitter, auth, by_thief)

    genuine = sign_authorization(payer.private_key, auth, domain)
    raised = replace(auth, value=10_000)
    with pytest.raises(ContractLogicError, match="invalid signature"):
        token.transfer_with_authorization(submitter, raised, genuine)

    wrong_domain = Domain("USDC", "2", domain.chain_id, domain.verifying_contract)
    with pytest.raises(ContractLogicError, match="invalid signature"):
        token.transfer_with_authorization(
            submitter, auth, sign_authorization(payer.private_key, auth, wrong_domain)
        )

    # (r, n - s, flipped v) recovers the same key but is non-canonical: refuse it.
    r, s, v = genuine[:32], int.from_bytes(genuine[32:64], "big"), genuine[64]
    malleable = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(ContractLogicError, match="invalid signature"):
        token.transfer_with_authorization(submitter, auth, malleable, packed=True)

    token.transfer_with_authorization(submitter, auth, genuine)  # the genuine one still works


def test_signature_matches_eth_account_typed_data(domain: Domain, chain: DevChain) -> None:
    payer = chain.payers[0]
    auth = Authorization.new(payer.address, chain.treasury.address, 5)
    signature = sign_authorization(payer.private_key, auth, domain)
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": domain.as_dict(),
        "message": auth.message(),
    }
    recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    assert recovered == payer.address


def test_receive_with_authorization_only_by_payee(
    chain: DevChain, token: Token, domain: Domain
) -> None:
    payer, payee = chain.payers[2], chain.payers[3]
    auth = Authorization.new(payer.address, payee.address, 42)
    signature = sign_authorization(payer.private_key, auth, domain, "ReceiveWithAuthorization")
    with pytest.raises(ContractLogicError, match="caller must be the payee"):
        token.receive_with_authorization(chain.facilitator.account, auth, signature)
    # A transfer-typed signature is not a receive authorization.
    transfer_sig = sign_authorization(payer.private_key, auth, domain)
    with pytest.raises(ContractLogicError, match="invalid signature"):
        token.receive_with_authorization(payee.account, auth, transfer_sig)
    before = token.balance_of(payee.address)
    token.receive_with_authorization(payee.account, auth, signature, packed=True)
    assert token.balance_of(payee.address) == before + 42
    assert token.authorization_state(payer.address, auth.nonce)


@pytest.mark.parametrize("packed", [False, True], ids=["v-r-s", "bytes-signature"])
def test_cancel_authorization_burns_the_nonce(
    chain: DevChain, token: Token, domain: Domain, packed: bool
) -> None:
    payer, payee = chain.payers[2], Wallet.create()
    submitter = chain.facilitator.account
    auth = Authorization.new(payer.address, payee.address, 1_000)
    transfer_sig = sign_authorization(payer.private_key, auth, domain)

    forged = sign_cancel(payee.private_key, payer.address, auth.nonce, domain)
    with pytest.raises(ContractLogicError, match="invalid signature"):
        token.cancel_authorization(submitter, payer.address, auth.nonce, forged, packed=packed)

    cancel_sig = sign_cancel(payer.private_key, payer.address, auth.nonce, domain)
    receipt = token.cancel_authorization(
        submitter, payer.address, auth.nonce, cancel_sig, packed=packed
    )
    assert _events(token, receipt, "AuthorizationCanceled") == [
        {"authorizer": payer.address, "nonce": auth.nonce}
    ]
    assert token.authorization_state(payer.address, auth.nonce)
    with pytest.raises(ContractLogicError, match="authorization is used or canceled"):
        token.transfer_with_authorization(submitter, auth, transfer_sig)
    with pytest.raises(ContractLogicError, match="authorization is used or canceled"):
        token.cancel_authorization(submitter, payer.address, auth.nonce, cancel_sig)
    assert token.balance_of(payee.address) == 0


def test_usdc_helper() -> None:
    assert usdc(1) == 1_000_000
    assert usdc("0.000001") == 1
    with pytest.raises(ValueError):
        usdc("0.0000001")
