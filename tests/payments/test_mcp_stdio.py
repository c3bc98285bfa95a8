"""`402claw mcp --gateway URL` driven by the official MCP stdio client: the gateway's tools,
paid on anvil with the caller's key, per call or through a channel, until the session's spend
cap refuses."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from paidstack import Stack

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet

CLI = str(Path(sys.executable).with_name("402claw"))


def _relay(stack: Stack, payer: Wallet, slug: str, *args: str) -> StdioServerParameters:
    """`402claw mcp` for tenant `slug`, paying with `payer` in the stack's token."""
    return StdioServerParameters(
        command=CLI,
        args=[
            "mcp",
            "--gateway",
            f"{stack.url}/t/{slug}",
            *args,
            "--asset",
            f"{stack.chain.network}={stack.chain.token}",
        ],
        env={**os.environ, "CLAW402_PAYER_KEY": payer.private_key},
    )


async def _session(stack: Stack, payer: Wallet, *args: str) -> dict[str, Any]:
    params = _relay(stack, payer, "beta", *args)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        schema = await session.call_tool("schema", {})
        first = await session.call_tool("query", {"city": "Delhi"})
        second = await session.call_tool("query", {"city": "Tokyo"})
        return {"tools": tools, "schema": schema, "first": first, "second": second}


def test_the_stdio_server_pays_within_the_session_cap(stack: Stack, payer: Wallet) -> None:
    price = stack.tenants["beta"].price_atomic  # $0.02
    before = stack.balance(payer.address)
    got = asyncio.run(
        _session(stack, payer, "--max-price", "0.05", "--max-total", "0.03", "--scheme", "exact")
    )
    assert got["tools"] == ["query", "schema"]
    assert not got["schema"].isError
    first = got["first"]
    assert not first.isError, first.content
    assert first.structuredContent["items"][0]["city"] == "Delhi"
    assert first.meta["x402/payment-response"]["success"]
    second = got["second"]
    assert second.isError and "spend cap reached" in second.content[0].text
    assert stack.balance(payer.address) == before - price  # one payment, none signed after


def test_the_per_call_cap_refuses_before_signing(stack: Stack, payer: Wallet) -> None:
    before = stack.balance(payer.address)
    got = asyncio.run(_session(stack, payer, "--max-price", "0.01"))
    assert got["first"].isError and got["second"].isError
    assert "0.02" in got["first"].content[0].text
    assert stack.balance(payer.address) == before


async def _queries(stack: Stack, payer: Wallet, slug: str, cities: list[str], *args: str) -> list:
    params = _relay(stack, payer, slug, *args)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return [await session.call_tool("query", {"city": city}) for city in cities]


def test_an_agent_pays_through_one_channel_and_the_cap_counts_charges(
    stack: Stack, payer: Wallet, tmp_path: Path
) -> None:
    """One deposit on chain, then a voucher a call (x402 2.25's MCP client runs no
    payment-response hooks: the relay does, or the second voucher would repeat the first's
    total); the session cap counts what calls were charged, not the deposit."""
    price = stack.tenants["gamma"].price_atomic  # $0.01
    before = stack.balance(payer.address)
    start = stack.chain.web3().eth.block_number
    cities = ["Delhi", "Tokyo", "Osaka", "Paris"]
    args = ["--scheme", "batch", "--max-price", "0.05", "--max-total", "0.035",
            "--deposit", "0.1", "--max-deposit", "0.1", "--home", str(tmp_path)]  # fmt: skip
    got = asyncio.run(_queries(stack, payer, "gamma", cities, *args))
    for n, (city, result) in enumerate(zip(cities[:3], got, strict=False), start=1):
        assert not result.isError, result.content
        assert result.structuredContent["items"][0]["city"] == city
        receipt = result.meta["x402/payment-response"]
        assert receipt["success"] and receipt["extra"]["chargedAmount"] == str(price)
        state = receipt["extra"]["channelState"]
        assert state["chargedCumulativeAmount"] == str(n * price)  # each voucher continues
    assert got[3].isError and "spend cap reached" in got[3].content[0].text
    assert before - stack.balance(payer.address) == usdc("0.1")  # the deposit, once
    assert stack.chain.web3().eth.block_number - start == 1  # one transaction: the deposit


def test_a_payer_record_behind_the_server_is_recovered_and_the_call_made_once_more(
    stack: Stack, payer: Wallet, tmp_path: Path
) -> None:
    """The payer's record of its channel lost the last voucher (its answer never came back):
    the next voucher repeats a total the server already took, the server answers a corrective
    402, the relay's hooks mend the record from it (reading the escrow) and the call goes
    through on the next total, charged once."""
    from claw402.payments.channel_payer import CHANNELS_DIR, channel_storage

    price = stack.tenants["gamma"].price_atomic
    args = ["--scheme", "batch", "--max-price", "0.05", "--deposit", "0.1",
            "--max-deposit", "0.1", "--home", str(tmp_path),
            "--rpc-url", stack.chain.rpc_url]  # fmt: skip
    first = asyncio.run(_queries(stack, payer, "gamma", ["Delhi", "Tokyo"], *args))
    assert [r.isError for r in first] == [False, False]
    storage = channel_storage(tmp_path / CHANNELS_DIR)
    ((channel_id, record),) = storage.all().items()
    assert record.charged_cumulative_amount == str(2 * price)
    record.charged_cumulative_amount = str(price)  # the second voucher's receipt was lost
    storage.set(channel_id, record)
    before = stack.balance(payer.address)
    (again,) = asyncio.run(_queries(stack, payer, "gamma", ["Osaka"], *args))
    assert not again.isError, again.content
    assert again.structuredContent["items"][0]["city"] == "Osaka"
    state = again.meta["x402/payment-response"]["extra"]["channelState"]
    assert state["chargedCumulativeAmount"] == str(3 * price)  # charged once, on the next total
    assert storage.get(channel_id).charged_cumulative_amount == str(3 * price)
    assert stack.balance(payer.address) == before  # no second deposit
