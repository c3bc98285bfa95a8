"""Payment settings per environment: misconfiguration fails at start and says what to fix."""

from __future__ import annotations

import pytest

from claw402.payments.config import (
    BASE,
    BASE_SEPOLIA,
    PUBLIC_TEST_FACILITATOR,
    PaymentConfig,
    PaymentConfigError,
    payment_config_from_env,
)
from claw402.payments.env import paywall_from_env

TREASURY = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEV = {
    "CLAW402_ENV": "dev",
    "CLAW402_NETWORK": "eip155:31337",
    "CLAW402_ASSET": TOKEN,
    "CLAW402_FACILITATOR_URL": "http://127.0.0.1:4020/",
    "CLAW402_TREASURY": TREASURY.lower(),
}


def test_nothing_configured_means_no_paywall():
    assert payment_config_from_env({}) is None
    assert paywall_from_env(engine=None, environ={}) is None  # type: ignore[arg-type]
    with pytest.raises(PaymentConfigError, match="no payment network configured"):
        PaymentConfig.from_env({})


def test_dev_reads_everything_from_the_environment():
    config = PaymentConfig.from_env(DEV)
    assert config.network == "eip155:31337"
    assert config.asset == TOKEN
    assert config.treasury == TREASURY  # checksummed
    assert config.facilitator_url == "http://127.0.0.1:4020"
    assert config.extra == {"name": "USD Coin", "version": "2"}
    assert config.environment == "dev"


def test_dev_is_implied_by_payment_variables_and_names_what_is_missing():
    with pytest.raises(PaymentConfigError) as err:
        PaymentConfig.from_env({"CLAW402_NETWORK": "eip155:31337"})
    message = str(err.value)
    assert "CLAW402_ENV=dev" in message
    for name in ("CLAW402_ASSET", "CLAW402_FACILITATOR_URL", "CLAW402_TREASURY"):
        assert name in message


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"CLAW402_ENV": "staging"}, "CLAW402_ENV must be one of dev, test, prod"),
        ({"CLAW402_NETWORK": "base"}, "CLAW402_NETWORK must be a CAIP-2"),
        ({"CLAW402_ASSET": "0x1234"}, "CLAW402_ASSET must be a 0x address"),
        ({"CLAW402_TREASURY": "treasury"}, "CLAW402_TREASURY must be a 0x address"),
        ({"CLAW402_FACILITATOR_URL": "127.0.0.1:4020"}, "CLAW402_FACILITATOR_URL must be"),
        ({"CLAW402_MAX_TIMEOUT_SECONDS": "soon"}, "CLAW402_MAX_TIMEOUT_SECONDS must be"),
        ({"CLAW402_MAX_TIMEOUT_SECONDS": "3"}, "between 7 and 86400"),
    ],
)
def test_dev_rejects_bad_values(override, fragment):
    with pytest.raises(PaymentConfigError, match=fragment):
        PaymentConfig.from_env({**DEV, **override})


def test_test_environment_is_base_sepolia_usdc_through_the_public_facilitator():
    config = PaymentConfig.from_env({"CLAW402_ENV": "test", "CLAW402_TREASURY": TREASURY})
    assert (config.network, config.asset) == (BASE_SEPOLIA.network, BASE_SEPOLIA.asset)
    assert config.extra == {"name": "USDC", "version": "2"}
    assert config.facilitator_url == PUBLIC_TEST_FACILITATOR


def test_test_environment_refuses_another_chain():
    with pytest.raises(PaymentConfigError, match="eip155:84532"):
        PaymentConfig.from_env(
            {"CLAW402_ENV": "test", "CLAW402_TREASURY": TREASURY, "CLAW402_NETWORK": "eip155:1"}
        )
    with pytest.raises(PaymentConfigError, match="USDC"):
        PaymentConfig.from_env(
            {"CLAW402_ENV": "test", "CLAW402_TREASURY": TREASURY, "CLAW402_ASSET_NAME": "USD Coin"}
        )


def test_prod_is_base_usdc_and_needs_a_real_facilitator_with_a_key():
    base = {"CLAW402_ENV": "prod", "CLAW402_TREASURY": TREASURY}
    with pytest.raises(PaymentConfigError, match="set CLAW402_FACILITATOR_URL"):
        PaymentConfig.from_env(base)
    with pytest.raises(PaymentConfigError) as err:
        PaymentConfig.from_env({**base, "CLAW402_FACILITATOR_URL": PUBLIC_TEST_FACILITATOR})
    assert "refuses the public test facilitator" in str(err.value)
    assert "CLAW402_FACILITATOR_API_KEY" in str(err.value)
    config = PaymentConfig.from_env(
        {
            **base,
            "CLAW402_FACILITATOR_URL": "https://facilitator.example.com",
            "CLAW402_FACILITATOR_API_KEY": "secret",
        }
    )
    assert (config.network, config.asset, config.extra["name"]) == (
        BASE.network,
        BASE.asset,
        "USD Coin",
    )
    assert "secret" not in repr(config)


def test_recovery_settings_come_from_the_environment():
    config = PaymentConfig.from_env(
        {
            **DEV,
            "CLAW402_RPC_URL": "http://127.0.0.1:8545",
            "CLAW402_PENDING_RETRY_SECONDS": "30",
            "CLAW402_PAYMENT_MAX_ATTEMPTS": "5",
        }
    )
    assert (config.rpc_url, config.pending_retry_seconds, config.max_attempts) == (
        "http://127.0.0.1:8545",
        30.0,
        5,
    )
    defaults = PaymentConfig.from_env(DEV)
    assert (defaults.rpc_url, defaults.pending_retry_seconds, defaults.max_attempts) == (
        None,
        120.0,
        3,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CLAW402_RPC_URL", "localhost:8545", "CLAW402_RPC_URL must be an http"),
        ("CLAW402_PENDING_RETRY_SECONDS", "soon", "must be a number"),
        ("CLAW402_PENDING_RETRY_SECONDS", "-1", "between 0 and 86400"),
        ("CLAW402_PAYMENT_MAX_ATTEMPTS", "0", "between 1 and 100"),
        ("CLAW402_PAYMENT_MAX_ATTEMPTS", "2.5", "must be an integer"),
    ],
)
def test_bad_recovery_settings_stop_the_gateway(name: str, value: str, message: str):
    with pytest.raises(PaymentConfigError, match=message):
        PaymentConfig.from_env({**DEV, name: value})
