"""The facilitator over real HTTP on a real anvil, driven by the official x402 SDK."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from x402.mechanisms.evm.constants import (
    ERR_AUTHORIZATION_VALUE_MISMATCH,
    ERR_INSUFFICIENT_BALANCE,
    ERR_INVALID_SIGNATURE,
    ERR_NONCE_ALREADY_USED,
    ERR_RECIPIENT_MISMATCH,
    ERR_VALID_BEFORE_EXPIRED,
)
from x402.schemas import PaymentPayload, PaymentRequirements

from claw402.chain.devchain import DevChain, start_dev_chain
from claw402.chain.wallet import Wallet
from claw402.facilitator.app import create_app
from claw402.facilitator.server import background_server
from claw402.facilitator.service import (
    INVALID_PAYLOAD,
    SETTLEMENT_IN_PROGRESS,
    UNSUPPORTED_NETWORK,
    UNSUPPORTED_SCHEME,
    ChainMismatch,
)
from claw402.facilitator.settings import FacilitatorSettings

Facilitator = Any  # conftest.Facilitator: verify/settle/supported through HTTPFacilitatorClient
Pay = Callable[[str, PaymentRequirements], PaymentPayload]
Requirements = Callable[..., PaymentRequirements]


def _body(payload: PaymentPayload, requirements: PaymentRequirements) -> dict[str, Any]:
    return {
        "x402Version": 2,
        "paymentPayload": payload.model_dump(mode="json", by_alias=True, exclude_none=True),
        "paymentRequirements": requirements.model_dump(
            mode="json", by_alias=True, exclude_none=True
        ),
    }


def _gas_spent_by(chain: DevChain, address: str) -> tuple[int, int]:
    w3 = chain.web3()
    return w3.eth.get_transaction_count(address), w3.eth.get_balance(address)


def test_supported_names_the_network_and_signer(facilitator: Facilitator, chain: DevChain) -> None:
    supported = facilitator.supported()
    assert [(k.x402_version, k.scheme, k.network) for k in supported.kinds] == [
        (2, "exact", "eip155:31337"),
        (2, "batch-settlement", "eip155:31337"),
    ]
    assert supported.signers == {"eip155:*": [chain.facilitator.address]}


def test_verify_then_settle_moves_exactly_the_amount(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    payer = chain.payers[0]
    req = requirements(amount="123456")
    payload = pay(payer.private_key, req)
    payer_before, treasury_before = (
        chain.balance(payer.address),
        chain.balance(chain.treasury.address),
    )
    payer_eth_before = chain.web3().eth.get_balance(payer.address)

    verified = facilitator.verify(payload, req)
    assert verified.is_valid, verified
    assert verified.payer == payer.address
    assert chain.balance(payer.address) == payer_before  # verify moves nothing

    settled = facilitator.settle(payload, req)
    assert settled.success, settled
    assert settled.network == chain.network and settled.payer == payer.address
    receipt = chain.web3().eth.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1
    assert receipt["from"] == chain.facilitator.address  # the facilitator paid the gas
    assert chain.balance(payer.address) == payer_before - 123456
    assert chain.balance(chain.treasury.address) == treasury_before + 123456
    assert chain.web3().eth.get_balance(payer.address) == payer_eth_before  # gasless for payer


def test_replay_is_refused_without_burning_gas(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements()
    payload = pay(chain.payers[1].private_key, req)
    assert facilitator.settle(payload, req).success
    gas_before = _gas_spent_by(chain, chain.facilitator.address)
    balance_before = chain.balance(chain.payers[1].address)

    again = facilitator.verify(payload, req)
    assert (again.is_valid, again.invalid_reason) == (False, ERR_NONCE_ALREADY_USED)
    replay = facilitator.settle(payload, req)
    assert (replay.success, replay.error_reason, replay.transaction) == (
        False,
        ERR_NONCE_ALREADY_USED,
        "",
    )
    assert _gas_spent_by(chain, chain.facilitator.address) == gas_before  # nothing broadcast
    assert chain.balance(chain.payers[1].address) == balance_before


def test_concurrent_settles_of_one_payment_broadcast_once(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements(amount="777")
    payload = pay(chain.payers[2].private_key, req)
    tx_count_before, _ = _gas_spent_by(chain, chain.facilitator.address)
    treasury_before = chain.balance(chain.treasury.address)
    results = []
    barrier = threading.Barrier(4)

    def settle() -> None:
        barrier.wait()
        results.append(facilitator.settle(payload, req))

    threads = [threading.Thread(target=settle) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.success for r in results) == 1
    assert {r.error_reason for r in results if not r.success} <= {
        SETTLEMENT_IN_PROGRESS,
        ERR_NONCE_ALREADY_USED,
    }
    assert chain.balance(chain.treasury.address) == treasury_before + 777
    tx_count_after, _ = _gas_spent_by(chain, chain.facilitator.address)
    assert tx_count_after == tx_count_before + 1


def test_foreign_network_is_refused(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    base = requirements(network="eip155:8453")
    payload = pay(chain.payers[0].private_key, base)
    verified = facilitator.verify(payload, base)
    assert (verified.is_valid, verified.invalid_reason) == (False, UNSUPPORTED_NETWORK)
    assert "eip155:31337 only" in (verified.invalid_message or "")
    settled = facilitator.settle(payload, base)
    assert (settled.success, settled.error_reason) == (False, UNSUPPORTED_NETWORK)

    # Our requirements, but a payload that claims another network.
    ours = requirements()
    mixed = pay(chain.payers[0].private_key, ours)
    mixed = mixed.model_copy(
        update={"accepted": mixed.accepted.model_copy(update={"network": "eip155:1"})}
    )
    assert facilitator.verify(mixed, ours).invalid_reason == UNSUPPORTED_NETWORK


def test_other_scheme_is_refused(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements()
    payload = pay(chain.payers[0].private_key, req)
    upto = req.model_copy(update={"scheme": "upto"})
    assert facilitator.verify(payload, upto).invalid_reason == UNSUPPORTED_SCHEME


def test_forged_signature_is_refused(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements()
    payload = pay(chain.payers[0].private_key, req)
    forged = payload.model_copy(deep=True)
    signature = forged.payload["signature"]
    forged.payload["signature"] = (
        signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
    )
    verified = facilitator.verify(forged, req)
    assert (verified.is_valid, verified.invalid_reason) == (False, ERR_INVALID_SIGNATURE)
    # Signed by someone else on the payer's behalf.
    stolen = pay(chain.payers[1].private_key, req).model_copy(deep=True)
    stolen.payload["authorization"]["from"] = chain.payers[0].address
    assert facilitator.verify(stolen, req).invalid_reason == ERR_INVALID_SIGNATURE


@pytest.mark.parametrize(
    "extra", [{"name": "USDC", "version": "2"}, {"name": "USD Coin", "version": "1"}]
)
def test_wrong_eip712_domain_is_refused_at_verify(
    facilitator: Facilitator,
    chain: DevChain,
    pay: Pay,
    requirements: Requirements,
    extra: dict[str, str],
) -> None:
    req = requirements(extra=extra)
    payload = pay(chain.payers[0].private_key, req)
    verified = facilitator.verify(payload, req)
    assert (verified.is_valid, verified.invalid_reason) == (False, ERR_INVALID_SIGNATURE)
    settled = facilitator.settle(payload, req)
    assert (settled.success, settled.transaction) == (False, "")


def test_underfunded_payer_is_refused_at_verify(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    broke = Wallet.create()
    req = requirements()
    verified = facilitator.verify(pay(broke.private_key, req), req)
    assert (verified.is_valid, verified.invalid_reason) == (False, ERR_INSUFFICIENT_BALANCE)
    assert verified.payer == broke.address


def test_payload_that_does_not_match_requirements_is_refused(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements(amount="10000")
    payload = pay(chain.payers[0].private_key, req)
    higher = req.model_copy(update={"amount": "20000"})
    assert facilitator.verify(payload, higher).invalid_reason == ERR_AUTHORIZATION_VALUE_MISMATCH
    elsewhere = req.model_copy(update={"pay_to": chain.payers[3].address})
    assert facilitator.verify(payload, elsewhere).invalid_reason == ERR_RECIPIENT_MISMATCH


def test_authorization_about_to_expire_is_refused(
    facilitator: Facilitator, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements(max_timeout_seconds=2)  # the SDK client signs validBefore = now + 2
    verified = facilitator.verify(pay(chain.payers[0].private_key, req), req)
    assert verified.invalid_reason == ERR_VALID_BEFORE_EXPIRED


def test_api_key_is_required_when_configured(
    keyed_facilitator_url: str,
    api_key: str,
    connect: Callable[..., Facilitator],
    chain: DevChain,
    pay: Pay,
    requirements: Requirements,
) -> None:
    for client in (connect(keyed_facilitator_url), connect(keyed_facilitator_url, "nope")):
        with pytest.raises(ValueError, match="401"):
            client.supported()
    req = requirements()
    payload = pay(chain.payers[0].private_key, req)
    with pytest.raises(ValueError, match="401"):
        connect(keyed_facilitator_url).verify(payload, req)

    keyed = connect(keyed_facilitator_url, api_key)
    assert keyed.supported().kinds[0].network == chain.network
    assert keyed.verify(payload, req).is_valid

    raw = httpx.post(f"{keyed_facilitator_url}/settle", json=_body(payload, req))
    assert raw.status_code == 401
    assert raw.headers["www-authenticate"] == "Bearer"
    assert raw.json()["error"] == "unauthorized"
    assert httpx.get(f"{keyed_facilitator_url}/health").json()["network"] == chain.network


def _garbage_cases(body: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    def variant(**changes: Any) -> bytes:
        data = json.loads(json.dumps(body))
        for path, value in changes.items():
            *parents, leaf = path.split("__")
            node = data
            for key in parents:
                node = node[key]
            node[leaf] = value
        return json.dumps(data).encode()

    return [
        ("not-json", b"this is not json", "invalid_json"),
        ("not-utf8", b"\xff\xfe\x00", "invalid_json"),
        ("empty", b"", "invalid_json"),
        ("array", b"[1, 2, 3]", "invalid_request"),
        ("no-payload", b'{"x402Version": 2}', "invalid_request"),
        ("v1", variant(x402Version=1), "unsupported_x402_version"),
        ("version-string", variant(x402Version="2"), "unsupported_x402_version"),
        ("payload-not-object", variant(paymentPayload="abc"), "invalid_request"),
        ("no-accepted", variant(paymentPayload__accepted=None), "invalid_request"),
        (
            "amount-words",
            variant(paymentRequirements__amount="ten"),
            "invalid_payment_requirements",
        ),
        ("asset-junk", variant(paymentRequirements__asset="0x123"), "invalid_payment_requirements"),
        ("timeout-type", variant(paymentRequirements__maxTimeoutSeconds="soon"), "invalid_request"),
    ]


def test_garbage_bodies_get_400_never_500(
    facilitator_url: str, chain: DevChain, pay: Pay, requirements: Requirements
) -> None:
    req = requirements()
    body = _body(pay(chain.payers[0].private_key, req), req)
    client = httpx.Client(base_url=facilitator_url)  # one client: no TLS setup per request
    for endpoint in ("verify", "settle"):
        for name, raw, error in _garbage_cases(body):
            response = client.post(
                f"/{endpoint}", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (endpoint, name, response.text)
            assert response.json()["error"] == error, (endpoint, name, response.text)
            assert response.json()["message"]


def test_oversized_body_gets_413(facilitator_url: str) -> None:
    response = httpx.post(f"{facilitator_url}/verify", content=b"{" + b" " * 70_000 + b"}")
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


@pytest.mark.parametrize(
    "inner",
    [
        {},
        {"authorization": "x", "signature": "0x00"},
        {"authorization": {"from": "0x1", "to": 5}, "signature": "zz"},
    ],
)
def test_malformed_payer_payload_is_an_invalid_payment(
    facilitator_url: str,
    chain: DevChain,
    pay: Pay,
    requirements: Requirements,
    inner: dict[str, Any],
) -> None:
    req = requirements()
    body = _body(pay(chain.payers[0].private_key, req), req)
    body["paymentPayload"]["payload"] = inner
    verify = httpx.post(f"{facilitator_url}/verify", json=body)
    assert verify.status_code == 200
    assert verify.json()["isValid"] is False
    assert verify.json()["invalidReason"] == INVALID_PAYLOAD
    settle = httpx.post(f"{facilitator_url}/settle", json=body)
    assert (settle.status_code, settle.json()["success"]) == (200, False)


def test_unreachable_rpc_is_502_not_an_invalid_payment(pay: Pay) -> None:
    with start_dev_chain(payers=1) as doomed:
        settings = FacilitatorSettings(
            rpc_url=doomed.rpc_url,
            private_key=doomed.facilitator.private_key,
            network=doomed.network,
        )
        req = PaymentRequirements(
            scheme="exact",
            network=doomed.network,
            asset=doomed.token,
            amount="1",
            pay_to=doomed.treasury.address,
            max_timeout_seconds=60,
            extra=doomed.asset_extra,
        )
        body = _body(pay(doomed.payers[0].private_key, req), req)
        with background_server(settings) as server:
            doomed.stop()
            for endpoint in ("verify", "settle"):
                response = httpx.post(f"{server.url}/{endpoint}", json=body, timeout=30)
                assert response.status_code == 502, response.text
                assert response.json()["error"] == "rpc_unavailable"


def test_rpc_of_another_chain_fails_at_startup(chain: DevChain) -> None:
    settings = FacilitatorSettings(
        rpc_url=chain.rpc_url, private_key=chain.facilitator.private_key, network="eip155:8453"
    )
    with pytest.raises(ChainMismatch, match="serves chain 31337, not eip155:8453"):
        create_app(settings)


def test_settle_waits_for_an_interval_mined_block(pay: Pay) -> None:
    """With a block every second the receipt is not there at first ask: settle polls for it."""
    with start_dev_chain(payers=1) as slow:
        w3 = slow.web3()
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]
        settings = FacilitatorSettings(
            rpc_url=slow.rpc_url, private_key=slow.facilitator.private_key, network=slow.network
        )
        req = PaymentRequirements(
            scheme="exact",
            network=slow.network,
            asset=slow.token,
            amount="5",
            pay_to=slow.treasury.address,
            max_timeout_seconds=60,
            extra=slow.asset_extra,
        )
        payload = pay(slow.payers[0].private_key, req)
        before = slow.balance(slow.treasury.address)
        with background_server(settings) as server:
            response = httpx.post(f"{server.url}/settle", json=_body(payload, req), timeout=30)
        assert response.status_code == 200
        assert response.json()["success"] is True, response.text
        assert slow.balance(slow.treasury.address) == before + 5
