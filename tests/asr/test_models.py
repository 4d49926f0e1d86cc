"""`hotline models install/list`: download, verify, unpack, against a local HTTP server (fast)."""

from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from asr import models as models_module
from asr.cli import models_group
from asr.models import MODELS, ModelInstallError, ModelSpec, install
from tests.support.http_server import serving

FOLDER = "vosk-model-small-cn-0.22"


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD = _zip({f"{FOLDER}/am/final.mdl": b"acoustic model" * 1000, f"{FOLDER}/conf/model.conf": b"--beam=10\n"})
EVIL = _zip({f"{FOLDER}/am/final.mdl": b"x", "../escape.txt": b"owned"})


def _spec(data: bytes, url: str) -> ModelSpec:
    return ModelSpec(
        name="vosk-small-cn",
        url=url,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        folder=FOLDER,
        description="test archive",
    )


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        if self.path == "/truncated.zip":  # promises the whole file, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    corrupt = bytearray(GOOD)
    corrupt[100] ^= 0xFF  # same size, one byte flipped
    _Handler.routes = {"/good.zip": GOOD, "/corrupt.zip": bytes(corrupt), "/evil.zip": EVIL, "/small.zip": b"tiny"}
    with serving(_Handler) as url:
        yield url


@pytest.fixture()
def test_spec(server: str, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """The registry entry pointed at the local server, with the test archive's size and hash."""
    spec = _spec(GOOD, f"{server}/good.zip")
    monkeypatch.setitem(MODELS, "vosk-small-cn", spec)
    return spec


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(models_group, list(args))
    return result.exit_code, result.output


def test_official_entry_is_the_documented_archive() -> None:
    spec = MODELS["vosk-small-cn"]
    assert spec.url == "https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip"
    assert spec.size == 43_898_754
    assert spec.sha256 == "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba"
    assert spec.folder == FOLDER


def test_install_good_archive(tmp_path: Path, test_spec: ModelSpec) -> None:
    code, output = _cli("install", "vosk-small-cn", "--dir", str(tmp_path))
    assert code == 0, output
    assert f"installed vosk-small-cn in {tmp_path / FOLDER} (sha256 verified)" in output
    assert (tmp_path / FOLDER / "am" / "final.mdl").read_bytes() == b"acoustic model" * 1000
    assert _leftovers(tmp_path) == [FOLDER]  # no .part file, no staging folder
    code, output = _cli("list", "--dir", str(tmp_path))
    assert code == 0
    assert "vosk-small-cn           download installed" in output
    assert "whisper-base            package  installed" in output


def test_wrong_hash_is_refused_and_nothing_is_installed(tmp_path: Path, test_spec: ModelSpec, server: str) -> None:
    code, output = _cli("install", "vosk-small-cn", "--dir", str(tmp_path), "--url", f"{server}/corrupt.zip")
    assert code == 1
    assert "error: checksum mismatch for vosk-small-cn" in output
    assert f"expected {test_spec.sha256}" in output and "nothing was installed" in output
    assert _leftovers(tmp_path) == []


def test_bad_download_keeps_the_previous_install(tmp_path: Path, test_spec: ModelSpec, server: str) -> None:
    assert _cli("install", "vosk-small-cn", "--dir", str(tmp_path))[0] == 0
    code, _ = _cli("install", "vosk-small-cn", "--dir", str(tmp_path), "--url", f"{server}/corrupt.zip")
    assert code == 1
    assert _leftovers(tmp_path) == [FOLDER]
    assert (tmp_path / FOLDER / "am" / "final.mdl").read_bytes() == b"acoustic model" * 1000


def test_truncated_download(tmp_path: Path, test_spec: ModelSpec, server: str) -> None:
    code, output = _cli("install", "vosk-small-cn", "--dir", str(tmp_path), "--url", f"{server}/truncated.zip")
    assert code == 1
    assert "error: download incomplete" in output
    assert f"of {len(GOOD):,} bytes" in output
    assert _leftovers(tmp_path) == []


def test_official_size_check_names_both_sizes(tmp_path: Path, server: str) -> None:
    """The real registry entry: a wrong file is refused on its size before any hashing."""
    code, output = _cli("install", "vosk-small-cn", "--dir", str(tmp_path), "--url", f"{server}/small.zip")
    assert code == 1
    assert "error: download incomplete or wrong file: 4 bytes, expected 43,898,754 bytes" in output
    assert _leftovers(tmp_path) == []


def test_unreachable_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/vosk-model-small-cn-0.22.zip"
    code, output = _cli("install", "vosk-small-cn", "--dir", str(tmp_path), "--url", url, "--timeout", "5")
    assert code == 1
    assert f"error: cannot download {url}" in output
    assert "--file PATH" in output  # tells the user how to install from a file fetched elsewhere
    assert _leftovers(tmp_path) == []


def test_http_error_status(tmp_path: Path, test_spec: ModelSpec, server: str) -> None:
    code, output = _cli("install", "vosk-small-cn", "--dir", str(tmp_path), "--url", f"{server}/missing.zip")
    assert code == 1 and "answered HTTP 404" in output


def test_install_from_a_local_file(tmp_path: Path, test_spec: ModelSpec) -> None:
    archive = tmp_path / "download.zip"
    archive.write_bytes(GOOD)
    models_dir = tmp_path / "models"
    code, output = _cli("install", "vosk-small-cn", "--dir", str(models_dir), "--file", str(archive))
    assert code == 0, output
    assert (models_dir / FOLDER / "conf" / "model.conf").is_file()


def test_path_traversal_is_refused(tmp_path: Path, server: str) -> None:
    spec = _spec(EVIL, f"{server}/evil.zip")
    with pytest.raises(ModelInstallError, match="escapes the target folder"):
        install(spec, tmp_path / "models")
    assert not (tmp_path / "escape.txt").exists()
    assert _leftovers(tmp_path / "models") == []


def test_progress_is_reported(tmp_path: Path, server: str) -> None:
    spec = _spec(GOOD, f"{server}/good.zip")
    seen: list[tuple[int, int]] = []
    install(spec, tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(GOOD), len(GOOD))
    assert models_module.list_models(tmp_path)[0].installed
