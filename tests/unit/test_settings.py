"""Settings come from SALA_* variables and refuse unsafe production values."""

import pytest
from pydantic import ValidationError

from services.common.redis_client import remap_address
from services.common.serve import load_settings
from services.common.settings import ServiceSettings
from services.gateway.settings import GatewaySettings
from services.rooms.settings import RoomsSettings


def test_origins_are_read_comma_separated(monkeypatch, tmp_path):
    monkeypatch.setenv("SALA_JWT_VERIFY_KEYS_FILE", str(tmp_path / "verify.pem"))
    monkeypatch.setenv("SALA_ALLOWED_ORIGINS", "https://chat.example, https://www.chat.example/")
    assert RoomsSettings().allowed_origins == ["https://chat.example", "https://www.chat.example"]


def test_production_refuses_plain_http_origins(monkeypatch, tmp_path):
    monkeypatch.setenv("SALA_JWT_VERIFY_KEYS_FILE", str(tmp_path / "verify.pem"))
    monkeypatch.setenv("SALA_ENV", "production")
    monkeypatch.setenv("SALA_ALLOWED_ORIGINS", "http://chat.example")
    with pytest.raises(ValidationError):
        RoomsSettings()


def test_a_missing_required_setting_stops_the_service_with_its_name(monkeypatch):
    monkeypatch.delenv("SALA_JWT_VERIFY_KEYS_FILE", raising=False)
    with pytest.raises(SystemExit) as stopped:
        load_settings(GatewaySettings)
    assert "SALA_JWT_VERIFY_KEYS_FILE" in str(stopped.value)


def test_each_gateway_run_gets_its_own_id(monkeypatch, tmp_path):
    monkeypatch.setenv("SALA_JWT_VERIFY_KEYS_FILE", str(tmp_path / "verify.pem"))
    monkeypatch.delenv("SALA_GATEWAY_ID", raising=False)
    assert GatewaySettings().gateway_id != GatewaySettings().gateway_id


def test_every_setting_is_documented_in_the_configuration_table():
    from pathlib import Path

    from services.auth.settings import AuthSettings

    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = {
        f"SALA_{name.upper()}"
        for settings in (AuthSettings, RoomsSettings, GatewaySettings)
        for name in settings.model_fields
        if f"SALA_{name.upper()}" not in docs
    }
    assert not missing, f"undocumented settings: {sorted(missing)}"


def test_the_cluster_address_map_is_read_as_announced_to_reachable_pairs():
    settings = ServiceSettings(redis_cluster_address_map="10.0.0.5:6379=127.0.0.1:16379, 10.0.0.6:6379=proxy:7000")
    assert settings.cluster_addresses == {"10.0.0.5:6379": "127.0.0.1:16379", "10.0.0.6:6379": "proxy:7000"}
    assert remap_address(settings.cluster_addresses, ("10.0.0.5", 6379)) == ("127.0.0.1", 16379)
    assert remap_address(settings.cluster_addresses, ("10.0.0.7", 6379)) == ("10.0.0.7", 6379)


@pytest.mark.parametrize("bad", ["10.0.0.5:6379", "10.0.0.5:6379=proxy", "=127.0.0.1:1", ",".join(["a:1=b:2"] * 1001)])
def test_a_malformed_cluster_address_map_is_refused(bad):
    with pytest.raises(ValidationError):
        ServiceSettings(redis_cluster_address_map=bad)
