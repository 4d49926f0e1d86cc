"""`hotline models install whisper-<size>`: the CTranslate2 conversions of Whisper, from the model hub or a mirror.

A model is a hub repository of a few files (model.bin, config.json, tokenizer.json, vocabulary, and for large-v3
preprocessor_config.json). The hub's tree listing (`/api/models/<repo>/tree/<revision>`) gives each file's size
and content address: SHA-256 for the large (LFS) files, the git blob SHA-1 for the small ones; every downloaded
file is checked against both before anything is installed. Files download into `.<folder>.partial/` beside the
target and resume from what is there (HTTP Range) when a download is interrupted; the folder is renamed into
place only when every file is complete and verified, so a failure leaves the previous install or nothing. The
listing is kept as MANIFEST.json in the model folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from asr.models import ModelInstallError, Progress, put_in_place

DEFAULT_HUB = "https://huggingface.co"  # in mainland China: --url https://hf-mirror.com


@dataclass(frozen=True)
class WhisperSpec:
    name: str
    repo: str
    folder: str
    description: str
    revision: str = "main"


WHISPER_MODELS: dict[str, WhisperSpec] = {
    spec.name: spec
    for spec in (
        WhisperSpec("whisper-small", "Systran/faster-whisper-small", "whisper-small", "Whisper small, 244 M (0.5 GB)"),
        WhisperSpec("whisper-medium", "Systran/faster-whisper-medium", "whisper-medium", "Whisper medium (1.5 GB)"),
        WhisperSpec(
            "whisper-large-v3", "Systran/faster-whisper-large-v3", "whisper-large-v3", "Whisper large-v3 (3 GB; GPU)"
        ),
        WhisperSpec(
            "whisper-large-v3-turbo",
            "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
            "whisper-large-v3-turbo",
            "Whisper large-v3 turbo, 4 decoder layers (1.6 GB; GPU)",
        ),
    )
}
WANTED = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.txt", "vocabulary.json")
REQUIRED = ("config.json", "model.bin", "tokenizer.json")


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    sha256: str | None  # LFS files
    git_sha1: str | None  # the others

    @classmethod
    def from_listing(cls, entry: dict[str, object]) -> HubFile:
        lfs = entry.get("lfs")
        sha256 = str(lfs["oid"]) if isinstance(lfs, dict) and "oid" in lfs else None
        return cls(
            path=str(entry["path"]),
            size=int(str(entry["size"])),
            sha256=sha256,
            git_sha1=None if sha256 else str(entry.get("oid") or "") or None,
        )


def _transport_error(url: str, exc: Exception) -> ModelInstallError:
    return ModelInstallError(
        f"cannot reach {url}: {exc or type(exc).__name__}. If this machine cannot reach the model hub, give a "
        "mirror it can reach with --url (e.g. https://hf-mirror.com), or install on another machine and copy the "
        "model folder here (asr.model_path)"
    )


def listing(client: httpx.Client, hub: str, spec: WhisperSpec) -> list[HubFile]:
    url = f"{hub}/api/models/{spec.repo}/tree/{spec.revision}"
    try:
        response = client.get(url)
    except httpx.TransportError as exc:
        raise _transport_error(url, exc) from exc
    if response.status_code != 200:
        raise ModelInstallError(f"{url} answered HTTP {response.status_code}: is {spec.repo} on that hub?")
    try:
        entries = response.json()
        files = [HubFile.from_listing(e) for e in entries if e.get("type") == "file" and e.get("path") in WANTED]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelInstallError(f"{url} did not answer with a file listing ({exc})") from exc
    missing = [name for name in REQUIRED if name not in {f.path for f in files}]
    if missing:
        raise ModelInstallError(f"{spec.repo} has no {', '.join(missing)}: not a CTranslate2 Whisper model")
    return files


def _digest(path: Path, file: HubFile) -> str:
    if file.sha256:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1()  # git's blob address: the content address the hub gives small files
        digest.update(f"blob {file.size}\0".encode())
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, file: HubFile) -> None:
    size = path.stat().st_size
    if size != file.size:
        raise ModelInstallError(f"{file.path}: {size:,} bytes, expected {file.size:,}")
    expected = file.sha256 or file.git_sha1
    if expected and _digest(path, file) != expected:
        kind = "sha256" if file.sha256 else "git sha1"
        raise ModelInstallError(
            f"checksum mismatch for {file.path} ({kind}, expected {expected}): the file is corrupt or not the "
            "published one; it was deleted and nothing was installed"
        )


def _fetch(client: httpx.Client, url: str, part: Path, file: HubFile, advance: Callable[[int], None]) -> None:
    """Download into `part`, resuming from its length."""
    have = part.stat().st_size if part.exists() else 0
    if have > file.size:
        part.unlink()
        have = 0
    if have == file.size:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 200 and have:  # the server ignores Range: start again
                have = 0
            elif response.status_code not in (200, 206):
                raise ModelInstallError(f"download failed: {url} answered HTTP {response.status_code}")
            with part.open("ab" if have else "wb") as out:
                for chunk in response.iter_bytes():  # as received: an interruption keeps every byte that came
                    out.write(chunk)
                    have += len(chunk)
                    if have > file.size:
                        raise ModelInstallError(f"{file.path} is larger than listed ({file.size:,} bytes)")
                    advance(len(chunk))
    except httpx.TimeoutException as exc:
        raise ModelInstallError(
            f"download timed out at {have:,} of {file.size:,} bytes of {file.path}; run the "
            "same command again to resume"
        ) from exc
    except httpx.TransportError as exc:
        if have:
            raise _interrupted(file, have, f" ({exc or type(exc).__name__})") from exc
        raise _transport_error(url, exc) from exc
    if have < file.size:
        raise _interrupted(file, have)


def _interrupted(file: HubFile, have: int, why: str = "") -> ModelInstallError:
    return ModelInstallError(
        f"download interrupted at {have:,} of {file.size:,} bytes of {file.path}{why}; run the same command again "
        "to resume"
    )


def install_whisper(
    spec: WhisperSpec,
    models_dir: Path,
    *,
    hub: str | None = None,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download, verify and install `spec` into models_dir/spec.folder. Returns the folder."""
    base = (hub or DEFAULT_HUB).rstrip("/")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".{spec.folder}.partial"
    staging.mkdir(exist_ok=True)
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True) as client:
        files = listing(client, base, spec)
        total = sum(f.size for f in files)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        for file in files:
            part = staging / file.path
            if part.exists() and part.stat().st_size == file.size:
                advance(file.size)  # complete from an earlier run (verified below)
            else:
                advance(part.stat().st_size if part.exists() else 0)
                _fetch(client, f"{base}/{spec.repo}/resolve/{spec.revision}/{file.path}", part, file, advance)
            try:
                verify_file(part, file)
            except ModelInstallError:
                part.unlink(missing_ok=True)
                raise
    manifest = {"repo": spec.repo, "revision": spec.revision, "hub": base, "files": [f.__dict__ for f in files]}
    (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return put_in_place(staging, models_dir / spec.folder)


def whisper_installed(models_dir: Path, spec: WhisperSpec) -> bool:
    return all((models_dir / spec.folder / name).is_file() for name in (*REQUIRED, "MANIFEST.json"))
