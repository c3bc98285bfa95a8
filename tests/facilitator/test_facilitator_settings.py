"""Settings fail at startup, with a message that says what to fix, and keep secrets quiet."""

from __future__ import annotations

import pytest

from claw402.facilitator.client import BearerAuth, facilitator_config
from claw402.facilitator.settings import FacilitatorSettings, SettingsError

KEY = "0x" + "11" * 32


def test_valid_settings_and_chain_id() -> None:
    settings = FacilitatorSettings(
        rpc_url="http://127.0.0.1:8545", private_key=KEY, network="eip155:84532"
    )
    assert settings.chain_id == 84532
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"network": "base-sepolia"}, "CAIP-2"),
        ({"network": "solana:mainnet"}, "CAIP-2"),
        ({"network": "eip155:0"}, "CAIP-2"),
        ({"private_key": "0x1234"}, "32 bytes"),
        ({"rpc_url": "127.0.0.1:8545"}, "http"),
        ({"api_key": "  "}, "api_key"),
        ({"authorizer_private_key": "0xabc"}, "authorizer key"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, str], message: str) -> None:
    fields = {"rpc_url": "http://127.0.0.1:8545", "private_key": KEY, "network": "eip155:31337"}
    with pytest.raises(SettingsError, match=message):
        FacilitatorSettings(**{**fields, **kwargs})


def test_from_env_reads_named_variables() -> None:
    env = {"FAC_KEY": KEY, "FAC_API": "s3cret"}
    settings = FacilitatorSettings.from_env(
        rpc_url="http://127.0.0.1:8545",
        private_key_env="FAC_KEY",
        network="eip155:31337",
        api_key_env="FAC_API",
        environ=env,
    )
    assert (settings.private_key, settings.api_key) == (KEY, "s3cret")
    with pytest.raises(SettingsError, match="MISSING is not set"):
        FacilitatorSettings.from_env(
            rpc_url="http://x", private_key_env="MISSING", network="eip155:1", environ=env
        )
    with pytest.raises(SettingsError, match="NOPE is not set"):
        FacilitatorSettings.from_env(
            rpc_url="http://x",
            private_key_env="FAC_KEY",
            network="eip155:1",
            api_key_env="NOPE",
            environ=env,
        )


def test_from_env_reads_the_authorizer_key_and_keeps_it_quiet() -> None:
    other = "0x" + "22" * 32
    env = {"FAC_KEY": KEY, "AUTH_KEY": other}
    settings = FacilitatorSettings.from_env(
        rpc_url="http://x",
        private_key_env="FAC_KEY",
        network="eip155:1",
        authorizer_key_env="AUTH_KEY",
        environ=env,
    )
    assert settings.authorizer_private_key == other and other not in repr(settings)
    with pytest.raises(SettingsError, match="GONE is not set"):
        FacilitatorSettings.from_env(
            rpc_url="http://x",
            private_key_env="FAC_KEY",
            network="eip155:1",
            authorizer_key_env="GONE",
            environ=env,
        )


def test_client_config_sends_bearer_token_everywhere() -> None:
    config = facilitator_config("http://127.0.0.1:4020/", api_key="k")
    assert isinstance(config.auth_provider, BearerAuth)
    headers = config.auth_provider.get_auth_headers()
    assert headers.verify == headers.settle == headers.supported == {"Authorization": "Bearer k"}
    assert facilitator_config("http://127.0.0.1:4020").auth_provider is None
