"""The one-call dev chain: roles, balances, Multicall3, and the x402 view of the token."""

from __future__ import annotations

import json

from claw402.chain.devchain import MULTICALL3_ADDRESS, DevChain, start_dev_chain
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet


def test_roles_are_distinct_and_funded(chain: DevChain) -> None:
    roles = [chain.deployer, chain.facilitator, chain.treasury, *chain.payers]
    assert len({wallet.address for wallet in roles}) == len(roles) == 7
    w3 = chain.web3()
    for wallet in roles:
        assert Wallet.from_key(wallet.private_key).address == wallet.address
        assert w3.eth.get_balance(wallet.address) > 10**21  # ETH for gas
    assert chain.token_contract().owner() == chain.deployer.address
    assert (chain.network, chain.chain_id) == ("eip155:31337", 31337)
    assert chain.asset_extra == {"name": "USD Coin", "version": "2"}


def test_fresh_chain_balances_and_payer_unpacking() -> None:
    with start_dev_chain(payers=12, payer_balance=usdc(5), treasury_balance=0, chain_id=777) as c:
        assert c.network == "eip155:777"
        assert len(c.payers) == 12
        assert c.balance(c.treasury.address) == 0
        for address, key in c.payers:
            assert c.balance(address) == 5_000_000
            assert key.startswith("0x") and len(key) == 66
        assert c.token_contract().total_supply() == 12 * 5_000_000


def test_multicall3_is_installed_and_answers(chain: DevChain) -> None:
    from x402.mechanisms.evm.constants import BALANCE_OF_ABI, NAME_ABI
    from x402.mechanisms.evm.multicall import MulticallCall, multicall

    from claw402.facilitator.signer import FastSigner

    assert chain.web3().eth.get_code(MULTICALL3_ADDRESS)
    signer = FastSigner(chain.facilitator.private_key, chain.rpc_url)
    payer = chain.payers[0].address
    results = multicall(
        signer,
        [
            MulticallCall(chain.token, BALANCE_OF_ABI, "balanceOf", (payer,)),
            MulticallCall(chain.token, NAME_ABI, "name"),
        ],
    )
    assert [r.success for r in results] == [True, True]
    assert results[0].result == chain.balance(payer)
    assert results[1].result == "USD Coin"


def test_fund_mints_usdc_and_sends_eth(chain: DevChain) -> None:
    wallet = Wallet.create()
    chain.fund(wallet.address, usdc(3), eth_wei=10**18)
    assert chain.balance(wallet.address) == 3_000_000
    assert chain.web3().eth.get_balance(wallet.address) == 10**18


def test_describe_is_json(chain: DevChain) -> None:
    summary = json.loads(json.dumps(chain.describe()))
    assert summary["token"] == chain.token
    assert summary["payers"][0]["address"] == chain.payers[0].address


def test_dev_takes_the_wallet_port_when_free_and_another_when_taken() -> None:
    import socket

    from claw402.devstack import _dev_chain

    with socket.socket() as holder:  # a port someone else holds
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with _dev_chain(1, taken) as elsewhere:
            assert elsewhere.rpc_url.startswith("http://127.0.0.1:")
            assert not elsewhere.rpc_url.endswith(f":{taken}")
            assert elsewhere.web3().eth.chain_id == 31337
    with _dev_chain(1, taken) as here:  # the holder let go: the port asked for is had
        assert here.rpc_url == f"http://127.0.0.1:{taken}"
