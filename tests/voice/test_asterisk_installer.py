"""The embedded-Asterisk installer: idempotent, offline from its cache, clear when it cannot work."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from voice.asterisk.cli import asterisk_group
from voice.asterisk.installer import (
    STAMP_NAME,
    AsteriskInstallError,
    InstallResult,
    asterisk_command,
    install_asterisk,
    installed_version,
    upstream_version,
)

UNREACHABLE = "http://127.0.0.1:9/debian"  # discard port: connection refused at once


def test_unreachable_mirror_and_empty_cache(tmp_path: Path) -> None:
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(AsteriskInstallError) as info:
        install_asterisk(tmp_path / "prefix", tmp_path / "cache", UNREACHABLE, lines.append)
    message = str(info.value)
    assert "cannot reach the Debian mirror http://127.0.0.1:9/debian" in message
    assert "Could not connect" in message
    assert "No complete download is cached" in message
    assert time.monotonic() - started < 15
    assert not (tmp_path / "prefix").exists()
    assert lines  # the user saw what was being tried


def test_incomplete_cache_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "apt/archives").mkdir(parents=True)
    (cache / "apt/archives/a_1_all.deb").write_bytes(b"x")
    (cache / "manifest.json").write_text(json.dumps({"version": "1:22.1-1", "debs": ["a_1_all.deb", "b_1_all.deb"]}))
    with pytest.raises(AsteriskInstallError, match="No complete download is cached"):
        install_asterisk(tmp_path / "prefix", cache, UNREACHABLE)


def test_foreign_prefix_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "prefix").mkdir()
    (tmp_path / "prefix" / "precious.txt").write_text("mine")
    with pytest.raises(AsteriskInstallError, match="not an Asterisk installed by"):
        install_asterisk(tmp_path / "prefix", tmp_path / "cache", UNREACHABLE)
    assert (tmp_path / "prefix" / "precious.txt").read_text() == "mine"


def test_cli_install_failure_exits_1(tmp_path: Path) -> None:
    args = [
        "install",
        "--prefix",
        str(tmp_path / "p"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--mirror",
        UNREACHABLE,
    ]
    result = CliRunner().invoke(asterisk_group, args)
    assert result.exit_code == 1
    assert "error: cannot reach the Debian mirror" in result.output


def test_cli_status_not_installed(tmp_path: Path) -> None:
    result = CliRunner().invoke(asterisk_group, ["status", "--prefix", str(tmp_path)])
    assert result.exit_code == 1
    assert "hotline asterisk install" in result.output


def test_commands_and_versions(tmp_path: Path) -> None:
    assert asterisk_command(None, Path("/usr/sbin/asterisk")) == ["/usr/sbin/asterisk"]
    with pytest.raises(AsteriskInstallError, match="hotline asterisk install"):
        asterisk_command(tmp_path)
    assert upstream_version("1:22.10.1+dfsg+~cs6.17.60671434-1") == "22.10.1"
    assert installed_version(tmp_path) is None


@pytest.mark.slow
def test_second_install_is_a_quick_noop(asterisk_install: InstallResult, tmp_path: Path) -> None:
    started = time.monotonic()
    again = install_asterisk(asterisk_install.prefix, tmp_path / "unused-cache", UNREACHABLE)
    assert time.monotonic() - started < 1
    assert again.source == "installed"
    assert again.version == asterisk_install.version
    assert not (tmp_path / "unused-cache").exists()  # no network, no cache: nothing was needed
    result = CliRunner().invoke(asterisk_group, ["status", "--prefix", str(asterisk_install.prefix)])
    assert result.exit_code == 0
    assert f"Asterisk {asterisk_install.version}" in result.output


@pytest.mark.slow
def test_offline_reinstall_from_cache(asterisk_install: InstallResult, tmp_path: Path) -> None:
    from hotline.settings import load_settings

    settings = load_settings()
    cache = settings.resolve(settings.asterisk.cache_dir)
    lines: list[str] = []
    result = install_asterisk(tmp_path / "prefix", cache, UNREACHABLE, lines.append)
    assert result.source == "cache"
    assert result.version.startswith("22.")
    assert result.packages > 100
    assert any("installing the cached Asterisk" in line for line in lines)
    assert any(line.startswith("unpacking") for line in lines)
    prefix = tmp_path / "prefix"
    stamp = json.loads((prefix / STAMP_NAME).read_text())
    assert stamp["version"] == result.version
    sounds = prefix / "usr/share/asterisk/sounds"
    assert (sounds / "en").resolve() == (sounds / "en_US_f_Allison").resolve()
    assert (sounds / "en_US" / "hello-world.gsm").is_file()
    assert not [p for p in sounds.iterdir() if p.is_symlink() and not p.exists()]  # no dangling links
    assert not list(tmp_path.glob(".prefix.*"))  # no staging leftovers
    version = subprocess.run([*asterisk_command(prefix), "-V"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(f"Asterisk {result.version}")
