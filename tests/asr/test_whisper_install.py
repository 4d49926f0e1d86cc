"""`hotline models install whisper-<size>` against a local model hub serving the packaged Whisper base files:
listing, download with progress, sizes and checksums, resume after an interruption, atomic install, errors."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from asr import whisper_install
from asr.cli import models_group
from asr.models import ModelInstallError
from asr.settings import AsrSettings
from asr.whisper_install import WhisperSpec, install_whisper, whisper_installed
from asr.whisper_model import load_whisper_model, packaged_base_files
from tests.support.http_server import serving

REPO = "test/faster-whisper-base"


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class Hub(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    cut_after: ClassVar[int | None] = None  # the next model.bin download stops after this many bytes
    corrupt: ClassVar[bool] = False
    ranges: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.path == f"/api/models/{REPO}/tree/main":
            listing = []
            for name, data in self.files.items():
                entry: dict[str, object] = {"type": "file", "path": name, "size": len(data), "oid": _git_sha1(data)}
                if name == "model.bin":
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                listing.append(entry)
            listing.append({"type": "file", "path": "README.md", "size": 5, "oid": "0" * 40})
            self._send(200, json.dumps(listing).encode())
            return
        prefix = f"/{REPO}/resolve/main/"
        name = self.path.removeprefix(prefix)
        if not self.path.startswith(prefix) or name not in self.files:
            self.send_error(404)
            return
        data = self.files[name]
        if self.corrupt and name == "model.bin":
            data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
        start = 0
        if "Range" in self.headers:
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name == "model.bin" and Hub.cut_after is not None:
            cut, Hub.cut_after = Hub.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    Hub.files = packaged_base_files()
    with serving(Hub) as url:
        yield url


@pytest.fixture(autouse=True)
def clean_hub() -> None:
    Hub.cut_after, Hub.corrupt, Hub.ranges = None, False, []


SPEC = WhisperSpec("whisper-small", REPO, "whisper-small", "the packaged base files, served as a hub repo")


def test_a_model_installs_verified_and_loads_by_its_size_name(hub: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    folder = install_whisper(SPEC, tmp_path, hub=hub, progress=lambda done, total: seen.append((done, total)))
    assert folder == tmp_path / "whisper-small" and whisper_installed(tmp_path, SPEC)
    assert sorted(p.name for p in folder.iterdir()) == [
        "MANIFEST.json", "config.json", "model.bin", "tokenizer.json", "vocabulary.txt",
    ]  # fmt: skip
    assert (folder / "model.bin").read_bytes() == Hub.files["model.bin"]
    total = sum(len(d) for d in Hub.files.values())
    assert seen[-1] == (total, total) and len(seen) > 10
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["repo"] == REPO and {f["path"] for f in manifest["files"]} == set(Hub.files)
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-small"]  # no staging left
    model = load_whisper_model(AsrSettings(model="small", models_dir=tmp_path))
    assert model.model.is_multilingual


def test_an_interrupted_download_resumes_where_it_stopped(hub: str, tmp_path: Path) -> None:
    Hub.cut_after = 5_000_000
    with pytest.raises(ModelInstallError, match=r"interrupted at 5,000,000 of .* model\.bin.*again to resume"):
        install_whisper(SPEC, tmp_path, hub=hub)
    assert not (tmp_path / "whisper-small").exists()
    install_whisper(SPEC, tmp_path, hub=hub)
    assert Hub.ranges == ["bytes=5000000-"]  # only the rest was asked for
    assert (tmp_path / "whisper-small" / "model.bin").read_bytes() == Hub.files["model.bin"]


def test_a_corrupt_file_is_refused_and_the_installed_model_kept(hub: str, tmp_path: Path) -> None:
    install_whisper(SPEC, tmp_path, hub=hub)
    before = (tmp_path / "whisper-small" / "MANIFEST.json").stat().st_mtime_ns
    Hub.corrupt = True
    with pytest.raises(ModelInstallError, match=r"checksum mismatch for model\.bin \(sha256"):
        install_whisper(SPEC, tmp_path, hub=hub)
    assert (tmp_path / "whisper-small" / "MANIFEST.json").stat().st_mtime_ns == before
    assert not (tmp_path / ".whisper-small.partial" / "model.bin").exists()  # the bad file is not resumed from


def test_an_unreachable_hub_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ModelInstallError, match=r"cannot reach .*--url .*hf-mirror"):
        install_whisper(SPEC, tmp_path, hub=f"http://127.0.0.1:{port}", timeout_s=2)


def test_a_missing_size_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="hotline models install whisper-medium"):
        load_whisper_model(AsrSettings(model="medium", models_dir=tmp_path))


def test_the_command_installs_from_a_mirror(hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(whisper_install.WHISPER_MODELS, "whisper-small", SPEC)
    result = CliRunner().invoke(
        models_group, ["install", "whisper-small", "--url", hub, "--dir", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "installed whisper-small" in result.output and "asr.model: small" in result.output
    listed = CliRunner().invoke(models_group, ["list", "--dir", str(tmp_path)]).output
    assert any(line.startswith("whisper-small") and "installed" in line for line in listed.splitlines())
