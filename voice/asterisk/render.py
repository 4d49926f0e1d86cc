"""Render the configuration of one private Asterisk instance from the settings (templates: voice/asterisk/templates/).

Everything an instance writes (configuration, logs, spool, sockets, astdb) lives in its runtime folder, so
several instances (one per test, say) can run side by side; only read-only data (sounds, MOH) and modules
are shared.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from voice.asterisk.secrets import Secrets
from voice.asterisk.tls import self_signed
from voice.settings import AsteriskHost

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
CONF_FILES = (
    "asterisk.conf",
    "modules.conf",
    "http.conf",
    "ari.conf",
    "pjsip.conf",
    "extensions.conf",
    "rtp.conf",
    "logger.conf",
    "musiconhold.conf",
    "indications.conf",
    "cdr.conf",
    "cel.conf",
    "manager.conf",
    "stasis.conf",
)
# Asterisk's defaults are right for these; an empty file stops it logging their absence as an ERROR.
DEFAULTS_ONLY_FILES = (
    "features.conf",
    "acl.conf",
    "udptl.conf",
    "pjproject.conf",
    "websocket_client.conf",
    "ccss.conf",
)
CODECS = "ulaw,alaw,g722"
# sockaddr_un.sun_path holds 108 bytes; Asterisk's control socket must fit (pytest tmp paths can be long).
_MAX_SOCKET_PATH = 100


class RenderError(Exception):
    """The settings cannot be turned into a valid Asterisk configuration."""


@dataclass(frozen=True)
class InstancePorts:
    """Ports of one instance, overriding the settings (tests pick free ones)."""

    http: int
    sip: int
    rtp_start: int


@dataclass(frozen=True)
class AsteriskDirs:
    """Where one instance keeps what. `run` holds the control socket asterisk.ctl and the pid file."""

    runtime: Path
    etc: Path
    lib: Path
    spool: Path
    run: Path
    log: Path
    cache: Path
    modules: Path
    data: Path
    sbin: Path

    @property
    def asterisk_conf(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def control_socket(self) -> Path:
        return self.run / "asterisk.ctl"

    @property
    def messages_log(self) -> Path:
        return self.log / "messages.log"


def _run_dir(runtime_dir: Path) -> Path:
    run = runtime_dir / "run"
    if len(str(run / "asterisk.ctl")) <= _MAX_SOCKET_PATH:
        return run
    # Too long for a Unix socket: a short folder named after the runtime folder (stable across restarts).
    digest = hashlib.sha256(str(runtime_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"hotline-ast-{digest}"


def default_data_dir(settings: AsteriskHost) -> Path:
    """Asterisk's read-only data (sounds, moh, and the XML documentation it refuses to start without)."""
    ast = settings.asterisk
    if ast.mode == "system" and ast.binary is not None:
        if ast.data_dir is not None:
            return settings.resolve(ast.data_dir)
        root = settings.resolve(ast.binary).parent.parent  # /usr/sbin/asterisk -> /usr
        for candidate in (root / "share/asterisk", Path("/usr/share/asterisk"), Path("/var/lib/asterisk")):
            if (candidate / "documentation").is_dir():
                return candidate
        return root / "share/asterisk"
    return settings.resolve(ast.prefix) / "usr/share/asterisk"


def default_sbin_dir(settings: AsteriskHost) -> Path:
    ast = settings.asterisk
    if ast.mode == "system" and ast.binary is not None:
        return settings.resolve(ast.binary).parent
    return settings.resolve(ast.prefix) / "usr/sbin"


def asterisk_dirs(runtime_dir: Path, modules_dir: Path, data_dir: Path, sbin_dir: Path) -> AsteriskDirs:
    runtime_dir = runtime_dir.resolve()
    return AsteriskDirs(
        runtime=runtime_dir,
        etc=runtime_dir / "etc",
        lib=runtime_dir / "lib",
        spool=runtime_dir / "spool",
        run=_run_dir(runtime_dir),
        log=runtime_dir / "log",
        cache=runtime_dir / "cache",
        modules=modules_dir.resolve(),
        data=data_dir.resolve(),
        sbin=sbin_dir,
    )


def rtp_range(settings: AsteriskHost, rtp_start: int | None = None) -> tuple[int, int]:
    """(rtpstart, rtpend): enough ports for max_concurrent_calls, both even (RTP even, RTCP odd)."""
    start = settings.asterisk.rtp_port_start if rtp_start is None else rtp_start
    start += start % 2
    end = start + settings.telephony.max_concurrent_calls * settings.asterisk.rtp_ports_per_call
    end += end % 2
    if end > 65534:
        raise RenderError(
            f"RTP range {start}-{end} passes 65534: lower asterisk.rtp_port_start, "
            "telephony.max_concurrent_calls or asterisk.rtp_ports_per_call"
        )
    return start, end


_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")


def _ast_value(value: str) -> str:
    """A value for Asterisk's config syntax: ';' starts a comment unless escaped; line breaks can't be
    written, and Asterisk trims surrounding blanks."""
    if _UNSAFE_VALUE.search(value) or value != value.strip():
        raise RenderError("a configuration value (a password?) has a line break, NUL or surrounding blanks")
    return value.replace(";", "\\;")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # not HTML: Asterisk .conf files
    )
    env.filters["ast_value"] = _ast_value
    return env


def _moh(data_dir: Path) -> tuple[Path, str]:
    moh = data_dir / "moh"
    if moh.is_dir() and any(moh.iterdir()):
        return moh, "the packaged music (asterisk-moh-opsound-gsm)."
    # No music installed: loop the silence prompts, so the default class still exists and holds are quiet.
    return data_dir / "sounds/en/silence", "no music installed: the default class plays silence."


def render_asterisk_config(
    settings: AsteriskHost,
    secrets: Secrets,
    runtime_dir: Path,
    modules_dir: Path,
    ports: InstancePorts | None = None,
    *,
    data_dir: Path | None = None,
) -> Path:
    """Write the instance's configuration to `runtime_dir`/etc, create its folders; return asterisk.conf."""
    dirs = asterisk_dirs(
        runtime_dir,
        modules_dir,
        data_dir if data_dir is not None else default_data_dir(settings),
        default_sbin_dir(settings),
    )
    http_port = ports.http if ports else settings.asterisk.http_port
    sip_port = ports.sip if ports else settings.asterisk.sip_port
    rtp_start, rtp_end = rtp_range(settings, ports.rtp_start if ports else None)
    moh_dir, moh_note = _moh(dirs.data)
    ast = settings.asterisk
    tls = None
    if ast.sip_tls_port is not None:
        tls_bind = ast.sip_tls_bind_address or ast.sip_bind_address
        if ast.tls_cert_file is not None and ast.tls_key_file is not None:
            cert, key = settings.resolve(ast.tls_cert_file), settings.resolve(ast.tls_key_file)
        else:
            cert, key = self_signed(runtime_dir / "tls", tls_bind)
        tls = {"bind": tls_bind, "port": ast.sip_tls_port, "cert": cert, "key": key}
    staff_ids = {op.id for op in [*settings.telephony.operators, *settings.telephony.supervisors]}
    operators = []
    for op in settings.telephony.sip_accounts():
        if op.id in ("callers", "trunks"):
            raise RenderError(f"operator id {op.id!r} is reserved for the callers' and trunks' endpoints")
        operators.append(
            {
                "id": op.id,
                "password": secrets.operator_password(op.id),
                "contact": op.contact,
                "tls": tls is not None and op.id in staff_ids,  # staff phones; the centre is a trunk
            }
        )
    context = {
        "dirs": dirs,
        "http_port": http_port,
        "sip_port": sip_port,
        "sip_bind": settings.asterisk.sip_bind_address,
        "tls": tls,
        "rtp_start": rtp_start,
        "rtp_end": rtp_end,
        "max_calls": settings.telephony.max_concurrent_calls,
        "ports_per_call": settings.asterisk.rtp_ports_per_call,
        "ari_username": settings.asterisk.ari_username,
        "ari_password": secrets.ari_password,
        "app": settings.ari.app,
        "system_name": settings.asterisk.system_name,
        "entry_number": settings.telephony.entry_number,
        "caller_networks": settings.telephony.caller_networks,
        "trusted_trunks": settings.telephony.trusted_trunks,
        "operators": operators,
        "codecs": CODECS,
        "moh_dir": moh_dir,
        "moh_note": moh_note,
    }
    for folder in (dirs.etc, dirs.lib, dirs.spool, dirs.run, dirs.log, dirs.cache):
        folder.mkdir(parents=True, exist_ok=True)
    dirs.etc.chmod(0o700)  # ari.conf and pjsip.conf hold passwords
    # ARI's recordings are written here (and fetched at the call's end): callers' voices, the owner's only
    (dirs.spool / "recording").mkdir(mode=0o700, exist_ok=True)
    env = _environment()
    for name in CONF_FILES:
        text = env.get_template(f"{name}.j2").render(context)
        target = dirs.etc / name
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    for name in DEFAULTS_ONLY_FILES:
        (dirs.etc / name).write_text(f"; {name}: Asterisk's defaults (rendered by voice/asterisk/render.py).\n")
    return dirs.asterisk_conf


_LOAD_LINE = re.compile(r"^\s*load\s*=>\s*(\S+?)(?:\.so)?\s*(?:;.*)?$")


def configured_modules(modules_conf: Path) -> list[str]:
    """Module names (without .so) that a rendered modules.conf loads."""
    names = []
    for line in modules_conf.read_text(encoding="utf-8").splitlines():
        match = _LOAD_LINE.match(line)
        if match:
            names.append(match.group(1))
    return names
