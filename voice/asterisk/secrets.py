"""Per-instance secrets: the ARI password and one SIP password per operator phone.

They never live in the settings file. Generated ones are kept in a JSON file (mode 0600) so they stay the same
across restarts; a password given explicitly in the settings or the environment wins and is not written out.
"""

from __future__ import annotations

import json
import secrets as _random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.paths import write_private
from voice.settings import AsteriskHost

_TOKEN_BYTES = 24  # 32 URL-safe characters: nothing in Asterisk's config syntax needs escaping


class SecretsError(Exception):
    """The secrets file exists but cannot be read or written."""


@dataclass(frozen=True)
class Secrets:
    ari_password: str
    operator_passwords: dict[str, str] = field(default_factory=dict)

    def operator_password(self, operator_id: str) -> str:
        return self.operator_passwords[operator_id]


def _new_password() -> str:
    return _random.token_urlsafe(_TOKEN_BYTES)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SecretsError(f"cannot read secrets file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SecretsError(f"secrets file {path} is not a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """The passwords, in a file never readable by others (config.paths.write_private)."""
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_or_create_secrets(path: Path, settings: AsteriskHost) -> Secrets:
    """Secrets for `settings`, generating (and persisting in `path`) whatever is missing."""
    stored = _read(path)
    generated_ari = stored.get("ari_password")
    generated_ops = stored.get("operator_passwords")
    if not isinstance(generated_ops, dict):
        generated_ops = {}
    changed = False
    if not isinstance(generated_ari, str) or not generated_ari:
        generated_ari = _new_password()
        changed = True
    accounts = settings.telephony.sip_accounts()
    for op in accounts:
        if op.password is None and not isinstance(generated_ops.get(op.id), str):
            generated_ops[op.id] = _new_password()
            changed = True
    if changed:
        # Passwords of operators no longer configured are kept: re-adding one keeps its phone's password.
        _write(path, {"ari_password": generated_ari, "operator_passwords": generated_ops})
    elif path.exists() and (path.stat().st_mode & 0o077):
        path.chmod(0o600)

    explicit_ari = settings.asterisk.ari_password
    ops = {
        op.id: op.password.get_secret_value() if op.password is not None else str(generated_ops[op.id])
        for op in accounts
    }
    return Secrets(
        ari_password=explicit_ari.get_secret_value() if explicit_ari is not None else generated_ari,
        operator_passwords=ops,
    )
