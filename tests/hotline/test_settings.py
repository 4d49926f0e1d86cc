"""Settings: defaults from the shipped file, environment overrides, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotline.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HOTLINE_"):
            monkeypatch.delenv(key)


def test_shipped_file_gives_embedded_defaults() -> None:
    settings = load_settings()
    assert settings.asterisk.mode == "embedded"
    assert settings.telephony.entry_number == "12345"
    assert [op.id for op in settings.telephony.operators] == ["op1001", "op1002"]
    assert all(op.password is None for op in settings.telephony.operators)  # secrets never in the repo


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ASTERISK__SIP_PORT", "5070")
    monkeypatch.setenv("HOTLINE_LOGGING__FORMAT", "json")
    settings = load_settings()
    assert settings.asterisk.sip_port == 5070
    assert settings.logging.format == "json"


def test_bad_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ASTERISK__SIP_PORT", "99999")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "asterisk.sip_port" in str(err.value)
    assert "65535" in str(err.value)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("telephony:\n  entry_numbr: '12345'\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(bad)
    assert "telephony.entry_numbr" in str(err.value)


def test_external_mode_needs_url_and_password(tmp_path: Path) -> None:
    cfg = tmp_path / "ext.yaml"
    cfg.write_text("asterisk:\n  mode: external\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg)
    assert "ari_url" in str(err.value)


def test_bad_caller_network_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_TELEPHONY__CALLER_NETWORKS", '["10.0.0.300/8"]')
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "telephony.caller_networks" in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path / "nope.yaml")
    assert "not found" in str(err.value)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"telephony": {"caller_networks": ["0.0.0.0/0"], "trusted_trunks": ["203.0.113.0/24"]}}, "overlaps"),
        ({"telephony": {"trusted_trunks": ["not-a-net"]}}, "is not a network"),
        ({"telephony": {"external_destinations": {"110": {"endpoint": "Local/110@x"}}}}, "endpoint"),
        ({"telephony": {"external_destinations": {"a/b": {"endpoint": "PJSIP/110@trunk"}}}}, "destination names"),
        ({"asterisk": {"sip_tls_port": 5061, "tls_cert_file": "/etc/ssl/x.crt"}}, "go together"),
    ],
)
def test_edge_settings_refuse_what_would_open_a_hole(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**sections)
    assert message in str(err.value)


def test_a_directory_entry_and_trunks_apart_from_callers_are_accepted() -> None:
    settings = load_settings(
        telephony={
            "caller_networks": ["198.51.100.0/24"],
            "trusted_trunks": ["203.0.113.0/24"],
            "external_destinations": {"police": {"endpoint": "PJSIP/110@trunk", "description": "110"}},
        }
    )
    assert settings.telephony.external_destinations["police"].endpoint == "PJSIP/110@trunk"
