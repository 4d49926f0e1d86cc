"""Generated secrets are private, stable across restarts, and explicit ones win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.loading import SettingsError
from hotline.settings import Settings, load_settings
from voice.asterisk.secrets import SecretsError, load_or_create_secrets


def _settings(
    *operators: dict[str, str], ari_password: str | None = None, supervisors: tuple[str, ...] = ()
) -> Settings:
    asterisk = {"ari_password": ari_password} if ari_password else {}
    phones = {"operators": list(operators), "supervisors": [{"id": sup} for sup in supervisors]}
    return load_settings(asterisk=asterisk, telephony=phones)


def test_generated_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "run" / "secrets.json"
    first = load_or_create_secrets(path, _settings({"id": "op1"}, {"id": "op2"}))
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(first.ari_password) >= 32
    assert set(first.operator_passwords) == {"op1", "op2", "interpreters"}  # phones and the centre's trunk
    assert first.operator_passwords["op1"] != first.operator_passwords["op2"]
    assert load_or_create_secrets(path, _settings({"id": "op1"}, {"id": "op2"})) == first


def test_a_supervisors_phone_gets_its_own_password(tmp_path: Path) -> None:
    secrets = load_or_create_secrets(tmp_path / "secrets.json", _settings({"id": "op1"}, supervisors=("sup1",)))
    assert set(secrets.operator_passwords) == {"op1", "sup1", "interpreters"}
    assert secrets.operator_passwords["sup1"] != secrets.operator_passwords["op1"]
    with pytest.raises(SettingsError, match="used twice"):  # one phone id is one person
        _settings({"id": "op1"}, supervisors=("op1",))


def test_new_operator_gets_new_password(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = load_or_create_secrets(path, _settings({"id": "op1"}))
    second = load_or_create_secrets(path, _settings({"id": "op1"}, {"id": "op2"}))
    assert second.ari_password == first.ari_password
    assert second.operator_passwords["op1"] == first.operator_passwords["op1"]
    assert second.operator_passwords["op2"] not in (first.ari_password, first.operator_passwords["op1"])
    # A removed operator disappears from the result but keeps its password for when it comes back.
    assert set(load_or_create_secrets(path, _settings()).operator_passwords) == {"interpreters"}
    assert load_or_create_secrets(path, _settings({"id": "op2"})).operator_passwords == {
        "op2": second.operator_passwords["op2"],
        "interpreters": second.operator_passwords["interpreters"],
    }


def test_explicit_passwords_win_and_are_not_written(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    secrets = load_or_create_secrets(
        path, _settings({"id": "op1", "password": "phone-pw"}, {"id": "op2"}, ari_password="ari-pw")
    )
    assert secrets.ari_password == "ari-pw"
    assert secrets.operator_passwords["op1"] == "phone-pw"
    stored = path.read_text()
    assert "ari-pw" not in stored and "phone-pw" not in stored
    assert "op1" not in json.loads(stored)["operator_passwords"]


def test_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    load_or_create_secrets(path, _settings())
    path.chmod(0o644)
    load_or_create_secrets(path, _settings())
    assert path.stat().st_mode & 0o777 == 0o600


def test_corrupt_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("{not json")
    with pytest.raises(SecretsError, match="cannot read"):
        load_or_create_secrets(path, _settings())
