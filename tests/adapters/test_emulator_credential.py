"""ADT_CREDENTIAL=emulator: a static token for the local emulator, refused for any ADT_URL that is not loopback;
ADT_CA_CERT: the CA the ADT client trusts."""

from __future__ import annotations

import pytest

from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.errors import ConfigError
from shared.settings.environment import Settings
from shared.wiring import EmulatorToken, adt_client_options, adt_instance, build_twin_store


@pytest.mark.parametrize("url", ["https://contoso.api.weu.digitaltwins.azure.net", "https://10.0.0.5:8443",
                                 "https://127.0.0.1.nip.io:8443", "https://localhost.example.com"])
def test_emulator_token_is_refused_off_loopback(url: str) -> None:
    settings = Settings.from_env({"ADT_URL": url, "ADT_CREDENTIAL": "emulator"})
    with pytest.raises(ConfigError, match="loopback"):
        build_twin_store(settings, ModelCatalog())


@pytest.mark.parametrize("url", ["https://127.0.0.1:8443", "https://localhost:1234", "https://[::1]:9000"])
def test_emulator_token_and_ca_on_loopback(url: str) -> None:
    settings = Settings.from_env({"ADT_URL": url, "ADT_CREDENTIAL": "emulator", "ADT_CA_CERT": "/tmp/ca.pem"})
    options = adt_client_options(settings)
    assert isinstance(options["credential"], EmulatorToken) and options["connection_verify"] == "/tmp/ca.pem"
    assert EmulatorToken().get_token("https://digitaltwins.azure.net/.default").token
    build_twin_store(settings, ModelCatalog())  # the real adapter, built without contacting anything


def test_default_credential_is_left_to_the_adapter() -> None:
    options = adt_client_options(Settings.from_env({"ADT_URL": "https://c.api.weu.digitaltwins.azure.net"}))
    assert options == {}  # AdtTwinStore.from_url then uses DefaultAzureCredential


def test_unknown_credential_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown credential"):
        build_twin_store(Settings.from_env({"ADT_URL": "https://x.api.weu.digitaltwins.azure.net",
                                            "ADT_CREDENTIAL": "secret"}), ModelCatalog())


def test_instance_is_the_host_name_of_adt_url() -> None:
    assert adt_instance(Settings.from_env({"ADT_URL": "https://127.0.0.1:8443"})) == "127.0.0.1:8443"
    assert adt_instance(Settings.from_env({"ADT_URL": "https://c.api.weu.digitaltwins.azure.net/"})) == \
        "c.api.weu.digitaltwins.azure.net"
    assert adt_instance(Settings.from_env({})) is None
