"""The payer's channel code in process (`pay_many_async`, `refund`), against a server built
from the SDK's own parts and the real facilitator on anvil: the demo's 100-call story."""

from __future__ import annotations

import asyncio
from pathlib import Path

from channelserver import channel_server
from paidstack import Stack

from claw402.payments.channel_payer import ChannelTerms, refund
from claw402.payments.client import pay_many_async

PRICE = 1_000


def test_a_hundred_calls_one_deposit_one_claim_one_settle_then_the_rest_refunded(
    stack: Stack, tmp_path: Path
) -> None:
    chain, wallet = stack.chain, stack.payer()
    terms = ChannelTerms(tmp_path / "channels", 200 * PRICE, 200 * PRICE, chain.rpc_url)
    start, height = stack.balance(wallet.address), chain.web3().eth.block_number
    with channel_server(chain, stack.facilitator_url, PRICE) as server:
        paid = asyncio.run(
            pay_many_async(
                server.url,
                wallet.private_key,
                PRICE,
                100,
                allowed_assets=[(chain.network, chain.token)],
                channels=terms,
            )
        )
        assert [p.response.status_code for p in paid] == [200] * 100
        kinds = [p.channel.kind for p in paid if p.channel]
        assert kinds == ["deposit"] + ["voucher"] * 99
        assert sum(p.channel.charged for p in paid if p.channel) == 100 * PRICE
        assert paid[-1].channel is not None and paid[-1].channel.remaining == 100 * PRICE
        assert chain.web3().eth.block_number == height + 1  # the deposit alone

        claims = server.manager.claim()
        assert [c.vouchers for c in claims] == [1]  # the channel's latest voucher
        server.manager.settle()
        assert chain.web3().eth.block_number == height + 3
        assert stack.balance(server.pay_to) == 100 * PRICE

        back = refund(server.url, wallet.private_key, terms)
        assert back.refunded == 100 * PRICE
    assert stack.balance(wallet.address) == start - 100 * PRICE


def test_a_second_home_resumes_the_channel_from_the_chain_and_the_server(
    stack: Stack, tmp_path: Path
) -> None:
    """No local record: the escrow (read over RPC) and the server's corrective 402 give the
    channel back, so the call is a voucher, not a second deposit."""
    chain, wallet = stack.chain, stack.payer()
    assets = [(chain.network, chain.token)]
    with channel_server(chain, stack.facilitator_url, PRICE) as server:
        first = ChannelTerms(tmp_path / "a", 10 * PRICE, None, chain.rpc_url)
        asyncio.run(pay_many_async(server.url, wallet.private_key, PRICE, 2,
                                   allowed_assets=assets, channels=first))  # fmt: skip
        height = chain.web3().eth.block_number
        other = ChannelTerms(tmp_path / "b", 10 * PRICE, None, chain.rpc_url)
        [paid] = asyncio.run(pay_many_async(server.url, wallet.private_key, PRICE, 1,
                                            allowed_assets=assets, channels=other))  # fmt: skip
        assert paid.response.status_code == 200
        assert paid.channel is not None and paid.channel.kind == "voucher"
        assert paid.channel.charged_total == 3 * PRICE
        assert chain.web3().eth.block_number == height
        server.manager.claim()
        server.manager.settle()
        assert stack.balance(server.pay_to) == 3 * PRICE


def test_the_channel_store_keeps_contexts_across_connections_by_normalised_id(
    tmp_path: Path,
) -> None:
    from x402.mechanisms.evm.batch_settlement.client import BatchSettlementClientContext

    from claw402.payments.channel_payer import DB_NAME, SqliteClientChannelStorage

    channel = "0x" + "Ab" * 32
    first = SqliteClientChannelStorage(tmp_path / DB_NAME)
    first.set(channel, BatchSettlementClientContext(charged_cumulative_amount="3", balance="10"))
    again = SqliteClientChannelStorage(tmp_path / DB_NAME)  # another process's connection
    found = again.get(channel.lower())
    assert found is not None and (found.balance, found.charged_cumulative_amount) == ("10", "3")
    assert list(again.all()) == [channel.lower()]
    again.delete(channel)
    assert first.get(channel) is None
    first.close()
    again.close()
