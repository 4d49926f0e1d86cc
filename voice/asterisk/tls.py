"""The certificate of the SIP TLS transport: the administrator's files, or a self-signed pair made once per
instance (operators' phones then trust that certificate explicitly)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class TlsError(Exception):
    """The certificate could not be made or read."""


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """`folder`/sip.crt and sip.key (P-256, 825 days, the host as subject and SAN); made if missing."""
    cert, key = folder / "sip.crt", folder / "sip.key"
    if cert.is_file() and key.is_file():
        return cert, key
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    san = f"IP:{host}" if host.replace(".", "").isdigit() or ":" in host else f"DNS:{host}"
    command = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "825", "-subj", f"/CN={host}", "-addext", f"subjectAltName={san}",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    old_umask = os.umask(0o077)  # the key is never readable by others, not even for a moment
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip()
        raise TlsError(f"cannot make the SIP TLS certificate with openssl: {exc} {detail}".strip()) from exc
    finally:
        os.umask(old_umask)
    return cert, key
