"""Install Asterisk 22 from Debian sid packages into a private prefix, without chroot, without touching dpkg.

Debian bookworm has no Asterisk; sid has 22.x, built against sid's newer glibc (DESIGN §5). So: a private apt
configuration (sid source, an empty dpkg status, its own lists and archives under the cache folder) downloads
the packages with all their dependencies, `dpkg -x` unpacks them into the prefix, and Asterisk runs through
the prefix's own dynamic loader (`asterisk_command`). Maintainer scripts never run; the one thing they do that
we need (the sounds/en links) is done here.

The .deb files stay in the cache folder with a manifest of the last complete set: sid moves and is sometimes
briefly uninstallable, and a re-install (prefix deleted, another machine with the cache copied) needs no
network.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PACKAGES: tuple[str, ...] = (
    "asterisk",
    "asterisk-modules",
    "asterisk-core-sounds-en",
    "asterisk-moh-opsound-gsm",  # 1.7 MB of hold music; without it the default MOH class plays silence
)
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
STAMP_NAME = ".hotline-asterisk.json"
MANIFEST_NAME = "manifest.json"

# machine -> (multiarch triplet, dynamic loader file name)
_ARCHES = {
    "x86_64": ("x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    "aarch64": ("aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
}
_INST_LINE = re.compile(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)")
_GET_LINE = re.compile(r"^Get:(\d+) \S+ \S+ \S+ (\S+) ")

Progress = Callable[[str], None]


class AsteriskInstallError(Exception):
    """Asterisk could not be installed; the message says why and what to do."""


@dataclass(frozen=True)
class InstallResult:
    prefix: Path
    version: str  # upstream version, e.g. "22.10.1"
    package_version: str  # Debian version of the asterisk package
    packages: int  # number of .deb files unpacked (0 when already installed)
    source: str  # "installed" (nothing to do), "network" or "cache"
    seconds: float


def _noop(_: str) -> None:
    pass


def _arch() -> tuple[str, str]:
    machine = platform.machine()
    if machine not in _ARCHES:
        raise AsteriskInstallError(f"unsupported machine {machine!r}: the embedded Asterisk needs x86_64 or aarch64")
    return _ARCHES[machine]


def library_dir(prefix: Path) -> Path:
    return prefix / "usr/lib" / _arch()[0]


def modules_dir(prefix: Path) -> Path:
    return library_dir(prefix) / "asterisk/modules"


def data_dir(prefix: Path) -> Path:
    return prefix / "usr/share/asterisk"


def _loader(prefix: Path) -> Path:
    name = _arch()[1]
    for candidate in (library_dir(prefix) / name, prefix / "usr/lib64" / name, prefix / "lib64" / name):
        if candidate.is_file():
            return candidate
    raise AsteriskInstallError(f"no dynamic loader {name} under {prefix}: run `hotline asterisk install`")


def asterisk_command(prefix: Path | None, binary: Path | None = None) -> list[str]:
    """The argv prefix that runs Asterisk: `binary` as is (mode=system), else the embedded one under `prefix`.

    The embedded binary is started through sid's own loader with sid's libraries: the host's (bookworm) glibc
    is too old for it, and nothing is installed system-wide.
    """
    if binary is not None:
        return [str(binary)]
    if prefix is None:
        raise ValueError("asterisk_command needs a prefix (embedded) or a binary (system)")
    prefix = prefix.resolve()
    return [
        str(_loader(prefix)),
        "--library-path",
        str(library_dir(prefix)),
        str(prefix / "usr/sbin/asterisk"),
    ]


def installed_version(prefix: Path) -> dict[str, str] | None:
    """The install stamp ({"version", "package_version", ...}) if a complete install is in `prefix`."""
    try:
        stamp = json.loads((prefix / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or not (prefix / "usr/sbin/asterisk").is_file():
        return None
    try:
        _loader(prefix)
    except AsteriskInstallError:
        return None
    return {str(k): str(v) for k, v in stamp.items()}


def upstream_version(package_version: str) -> str:
    """'1:22.10.1+dfsg+~cs6.17.60671434-1' -> '22.10.1'."""
    match = re.match(r"^(?:\d+:)?(\d+(?:\.\d+)*)", package_version)
    return match.group(1) if match else package_version


class _Apt:
    """apt-get with a private configuration: sid only, empty dpkg status, everything under `root`."""

    def __init__(self, root: Path, mirror: str) -> None:
        self.root = root
        self.archives = root / "archives"
        for sub in (
            "lists/partial",
            "archives/partial",
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        signed = f"signed-by={KEYRING}" if KEYRING.is_file() else "trusted=yes"
        (root / "etc/sources.list").write_text(f"deb [{signed}] {mirror.rstrip('/')} sid main\n")
        options = {
            "Dir::State": root,
            "Dir::State::Lists": root / "lists",
            "Dir::State::status": root / "status",  # empty: apt resolves as if nothing were installed
            "Dir::Cache": root,
            "Dir::Cache::Archives": self.archives,
            "Dir::Etc": root / "etc",
            "Dir::Etc::SourceList": root / "etc/sources.list",
            "Dir::Etc::SourceParts": root / "etc/sources.list.d",
            "Dir::Etc::Parts": root / "etc/apt.conf.d",  # the host's apt.conf.d must not leak in
            "Dir::Etc::Preferences": root / "etc/preferences",
            "Dir::Etc::PreferencesParts": root / "etc/preferences.d",
            "APT::Install-Recommends": "false",
            "APT::Install-Suggests": "false",
            "Acquire::Languages": "none",
            # Mirrors and snapshots may serve a Release past its Valid-Until; signatures are still checked.
            "Acquire::Check-Valid-Until": "false",
            "Acquire::Retries": "1",
            "Acquire::http::Timeout": "30",
            "APT::Update::Error-Mode": "any",  # a failed index download is an error, not a warning
        }
        if os.geteuid() == 0:
            options["APT::Sandbox::User"] = "root"  # _apt may not be able to enter the project folder
        conf = "".join(f'{key} "{value}";\n' for key, value in options.items())
        self.config = root / "apt.conf"
        self.config.write_text(conf)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"APT_CONFIG": str(self.config), "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})
        return env

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "-q", *args], env=self._env(), capture_output=True, text=True, check=False)

    def stream(self, args: Sequence[str]) -> Iterator[str]:
        """apt-get's output line by line; raises CalledProcessError (with the output) on failure."""
        proc = subprocess.Popen(
            ["apt-get", "-q", *args],
            env=self._env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            tail = [*tail[-30:], line]
            yield line.rstrip("\n")
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, "apt-get", output="".join(tail))


def _apt_error(output: str) -> str:
    """apt's first error line, which names the cause ("Could not connect to …", "unmet dependencies")."""
    errors = [line[2:].strip() for line in output.splitlines() if line.startswith("E:")]
    details = [line.strip() for line in output.splitlines() if line.startswith(" ")]
    if errors:
        return " ".join([errors[0], *details[:6]])
    return output.strip()[-500:]


def _deb_name(package: str, version: str, arch: str) -> str:
    return f"{package}_{version.replace(':', '%3a')}_{arch}.deb"  # how apt names files in its archives


def _download(apt: _Apt, packages: Sequence[str], mirror: str, progress: Progress) -> tuple[list[Path], str]:
    """Download the full set for `packages` (except what the cache has); return the .debs and the version."""
    progress(f"reading the sid package list from {mirror} …")
    update = apt.run(["update"])
    if update.returncode != 0:
        raise AsteriskInstallError(
            f"cannot reach the Debian mirror {mirror}: {_apt_error(update.stdout + update.stderr)}"
        )
    plan = apt.run(["-s", "install", *packages])
    if plan.returncode != 0:
        raise AsteriskInstallError(
            f"sid's Asterisk packages cannot be installed right now (sid moves; try again later): "
            f"{_apt_error(plan.stdout + plan.stderr)}"
        )
    debs: list[Path] = []
    version = ""
    for line in plan.stdout.splitlines():
        match = _INST_LINE.match(line)
        if match:
            debs.append(apt.archives / _deb_name(*match.groups()))
            if match.group(1) == "asterisk":
                version = match.group(2)
    if not debs or not version:
        raise AsteriskInstallError(f"apt planned no asterisk package from {mirror}: {plan.stdout[-500:]}")
    missing = [deb for deb in debs if not deb.is_file()]
    progress(f"{len(debs)} packages for Asterisk {upstream_version(version)}, {len(missing)} to download")
    if missing:
        step = max(1, len(missing) // 10)
        try:
            for line in apt.stream(["-y", "install", "--download-only", *packages]):
                match = _GET_LINE.match(line)
                if match and (int(match.group(1)) % step == 0 or int(match.group(1)) == len(missing)):
                    progress(f"downloading {match.group(1)}/{len(missing)} {match.group(2)}")
        except subprocess.CalledProcessError as exc:
            raise AsteriskInstallError(f"downloading from {mirror} failed: {_apt_error(str(exc.output))}") from exc
    absent = [deb.name for deb in debs if not deb.is_file()]
    if absent:
        raise AsteriskInstallError(f"apt finished but {len(absent)} packages are missing, e.g. {absent[0]}")
    return debs, version


def _write_manifest(cache_dir: Path, debs: Sequence[Path], version: str, mirror: str) -> None:
    manifest = {"version": version, "mirror": mirror, "debs": [deb.name for deb in debs], "time": time.time()}
    tmp = cache_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(cache_dir / MANIFEST_NAME)
    # Older versions are dead weight once a newer complete set is in the cache.
    keep = {deb.name for deb in debs}
    for old in (cache_dir / "apt/archives").glob("*.deb"):
        if old.name not in keep:
            old.unlink()
    # The package indexes (≈65 MB) are stale within hours; the next install fetches fresh ones anyway.
    for index in [*(cache_dir / "apt/lists").glob("*_dists_*"), *(cache_dir / "apt").glob("*.bin")]:
        index.unlink()


def _cached_set(cache_dir: Path) -> tuple[list[Path], str] | None:
    """The last complete download, if every file of it is still in the cache."""
    try:
        manifest = json.loads((cache_dir / MANIFEST_NAME).read_text())
        debs = [cache_dir / "apt/archives" / name for name in manifest["debs"]]
        version = str(manifest["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not debs or not all(deb.is_file() for deb in debs):
        return None
    return debs, version


def _unpack(debs: Sequence[Path], target: Path, progress: Progress) -> None:
    step = max(1, len(debs) // 10)
    done = 0

    def extract(deb: Path) -> None:
        result = subprocess.run(["dpkg", "-x", str(deb), str(target)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise AsteriskInstallError(f"unpacking {deb.name} failed: {result.stderr.strip()}")

    # dpkg -x is tar underneath; packages don't share files, so unpacking them side by side is safe.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for _ in pool.map(extract, debs):
            done += 1
            if done % step == 0 or done == len(debs):
                progress(f"unpacking {done}/{len(debs)} …")


def _post_install(prefix: Path) -> None:
    """What the maintainer scripts would have done that we need."""
    sounds = data_dir(prefix) / "sounds"
    # asterisk-core-sounds-en's postinst registers these as alternatives; `en` is Asterisk's default language.
    for link in ("en", "en_US"):
        path = sounds / link
        if path.is_symlink() or not path.exists():
            path.unlink(missing_ok=True)
            path.symlink_to("en_US_f_Allison")
    # Links into the host's /var/lib/asterisk dangle here and make Asterisk's sound index log errors.
    for entry in sounds.iterdir():
        if entry.is_symlink() and not entry.exists():
            entry.unlink()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time per cache (parallel test workers, two terminals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install_asterisk(
    prefix: Path,
    cache_dir: Path,
    mirror: str,
    progress: Progress = _noop,
    *,
    force: bool = False,
    packages: Sequence[str] = PACKAGES,
) -> InstallResult:
    """Install Asterisk 22 from sid into `prefix` (see the module docstring). A no-op when already installed.

    Downloads into `cache_dir`; when the mirror is unreachable or sid is uninstallable, installs the last
    complete set from the cache instead. Raises AsteriskInstallError when neither works.
    """
    started = time.monotonic()
    prefix = prefix.resolve()
    cache_dir = cache_dir.resolve()
    stamp = installed_version(prefix)
    if stamp is not None and not force:  # the quick path touches nothing, not even the cache folder
        return InstallResult(prefix, stamp["version"], stamp["package_version"], 0, "installed", 0.0)
    if prefix.exists() and not (prefix / STAMP_NAME).exists() and any(prefix.iterdir()):
        # The prefix is replaced as a whole: never do that to a folder this installer did not make.
        raise AsteriskInstallError(
            f"{prefix} exists and is not an Asterisk installed by `hotline asterisk install`; "
            "remove it or choose another prefix"
        )
    with _locked(cache_dir / ".lock"):
        stamp = installed_version(prefix)  # another process may have finished while we waited
        if stamp is not None and not force:
            return InstallResult(prefix, stamp["version"], stamp["package_version"], 0, "installed", 0.0)
        apt = _Apt(cache_dir / "apt", mirror)
        try:
            debs, package_version = _download(apt, packages, mirror, progress)
            source = "network"
            _write_manifest(cache_dir, debs, package_version, mirror)
        except AsteriskInstallError as exc:
            cached = _cached_set(cache_dir)
            if cached is None:
                raise AsteriskInstallError(
                    f"{exc}\nNo complete download is cached in {cache_dir} either. Check the network or the "
                    "mirror (asterisk.sid_mirror / HOTLINE_ASTERISK__SID_MIRROR), or copy the cache folder "
                    "of a machine that installed it."
                ) from exc
            debs, package_version = cached
            source = "cache"
            progress(f"{exc}\ninstalling the cached Asterisk {upstream_version(package_version)} instead")

        # Unpack next to the prefix and swap it in at the end: an interrupted install never looks complete.
        prefix.parent.mkdir(parents=True, exist_ok=True)
        staging = prefix.with_name(f".{prefix.name}.new-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            _unpack(debs, staging, progress)
            _post_install(staging)
            version = upstream_version(package_version)
            stamp_data = {
                "version": version,
                "package_version": package_version,
                "packages": str(len(debs)),
                "source": source,
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (staging / STAMP_NAME).write_text(json.dumps(stamp_data, indent=2) + "\n")
            if prefix.exists():
                old = prefix.with_name(f".{prefix.name}.old-{os.getpid()}")
                prefix.rename(old)
                staging.rename(prefix)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(prefix)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = time.monotonic() - started
        progress(f"Asterisk {version} installed in {prefix} ({len(debs)} packages, {seconds:.1f} s)")
        return InstallResult(prefix, version, package_version, len(debs), source, seconds)
