"""The Asterisk configuration templates render the settings faithfully (no Asterisk needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hotline.settings import Settings, load_settings
from voice.asterisk.render import (
    CONF_FILES,
    DEFAULTS_ONLY_FILES,
    InstancePorts,
    RenderError,
    asterisk_dirs,
    configured_modules,
    render_asterisk_config,
    rtp_range,
)
from voice.asterisk.secrets import Secrets

PORTS = InstancePorts(http=18088, sip=15070, rtp_start=20000)
SECRETS = Secrets(
    ari_password="ari-secret",
    operator_passwords={"op1001": "pw-1001", "op1002": "pw-1002", "sup2001": "pw-2001", "interpreters": "pw-centre"},
)


def _settings(**sections: dict[str, Any]) -> Settings:
    base: dict[str, Any] = {
        "telephony": {
            "entry_number": "12345",
            "max_concurrent_calls": 10,
            "caller_networks": ["127.0.0.0/8", "10.1.0.0/16"],
            "operators": [{"id": "op1001"}, {"id": "op1002"}],
        },
        "ari": {"app": "hotline"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(**base)


def _sections(path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """Asterisk .conf as (section, {key: [values]}) in order; a section name may repeat (PJSIP types)."""
    out: list[tuple[str, dict[str, list[str]]]] = []
    for raw in path.read_text().splitlines():
        line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            out.append((header.group(1), {}))
            continue
        key, _, value = line.partition("=>") if "=>" in line else line.partition("=")
        out[-1][1].setdefault(key.strip(), []).append(value.strip())
    return out


def _section(path: Path, name: str, type_: str | None = None) -> dict[str, list[str]]:
    for section, values in _sections(path):
        if section == name and (type_ is None or values.get("type") == [type_]):
            return values
    raise AssertionError(f"no [{name}] type={type_} in {path.name}")


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    (data / "moh").mkdir(parents=True)
    (data / "moh" / "tune.gsm").write_bytes(b"\0")
    conf = render_asterisk_config(_settings(), SECRETS, tmp_path / "rt", tmp_path / "mods", PORTS, data_dir=data)
    return conf, conf.parent


def test_all_files_written(rendered: tuple[Path, Path]) -> None:
    conf, etc = rendered
    assert conf == etc / "asterisk.conf"
    for name in (*CONF_FILES, *DEFAULTS_ONLY_FILES):
        assert (etc / name).is_file(), name
    assert etc.stat().st_mode & 0o077 == 0  # passwords inside


def test_directories_point_into_runtime(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    conf, _ = rendered
    dirs = _section(conf, "directories")
    runtime = (tmp_path / "rt").resolve()
    for key in ("astetcdir", "astvarlibdir", "astspooldir", "astrundir", "astlogdir", "astdbdir"):
        assert Path(dirs[key][0]).is_relative_to(runtime), key
        assert Path(dirs[key][0]).is_dir(), key
    assert dirs["astmoddir"] == [str((tmp_path / "mods").resolve())]
    assert dirs["astdatadir"] == [str((tmp_path / "data").resolve())]
    options = _section(conf, "options")
    assert options["nocolor"] == ["yes"]
    assert "runuser" not in options


def test_http_and_ari(rendered: tuple[Path, Path]) -> None:
    _, etc = rendered
    http = _section(etc / "http.conf", "general")
    assert http["enabled"] == ["yes"]
    assert http["bindaddr"] == ["127.0.0.1"]
    assert http["bindport"] == ["18088"]
    user = _section(etc / "ari.conf", "hotline", "user")
    assert user["password"] == ["ari-secret"]
    assert user["password_format"] == ["plain"]
    assert _section(etc / "ari.conf", "general")["enabled"] == ["yes"]


def test_pjsip(rendered: tuple[Path, Path]) -> None:
    _, etc = rendered
    pjsip = etc / "pjsip.conf"
    assert _section(pjsip, "transport-udp", "transport")["bind"] == ["127.0.0.1:15070"]
    callers = _section(pjsip, "callers", "endpoint")
    assert callers["context"] == ["from-callers"]
    assert callers["allow"] == ["ulaw,alaw,g722"]
    assert callers["dtmf_mode"] == ["rfc4733"]
    assert callers["direct_media"] == ["no"]
    assert callers["rtp_symmetric"] == ["yes"]
    assert _section(pjsip, "callers", "identify")["match"] == ["127.0.0.0/8", "10.1.0.0/16"]
    for op in ("op1001", "op1002"):
        endpoint = _section(pjsip, op, "endpoint")
        assert endpoint["context"] == ["from-operators"]
        assert endpoint["auth"] == [op] and endpoint["aors"] == [op]
        auth = _section(pjsip, op, "auth")
        assert auth["username"] == [op]
        assert auth["password"] == [SECRETS.operator_passwords[op]]
        aor = _section(pjsip, op, "aor")
        assert aor["max_contacts"] == ["1"]
        assert aor["remove_existing"] == ["yes"]
        assert aor["qualify_frequency"] == ["0"]


def test_dialplan(rendered: tuple[Path, Path]) -> None:
    _, etc = rendered
    callers = _section(etc / "extensions.conf", "from-callers")
    assert callers["exten"][0] == "12345,1,NoOp(hotline call from ${CALLERID(num)})"
    assert callers["same"] == ["n,Stasis(hotline)", "n,Hangup()"]
    assert callers["exten"][1].endswith(",1,Hangup(1)")
    assert "from-operators" in [name for name, _ in _sections(etc / "extensions.conf")]


def test_rtp_range(rendered: tuple[Path, Path]) -> None:
    _, etc = rendered
    rtp = _section(etc / "rtp.conf", "general")
    assert rtp["rtpstart"] == ["20000"]
    assert rtp["rtpend"] == [str(20000 + 10 * 8)]  # max_concurrent_calls x rtp_ports_per_call
    assert rtp["strictrtp"] == ["yes"]


def test_rtp_range_even_and_bounded() -> None:
    assert rtp_range(_settings(asterisk={"rtp_ports_per_call": 3}), 20001) == (20002, 20032)
    with pytest.raises(RenderError, match="65534"):
        rtp_range(_settings(telephony={"max_concurrent_calls": 5000}), 60000)


def test_modules(rendered: tuple[Path, Path]) -> None:
    _, etc = rendered
    assert _section(etc / "modules.conf", "modules")["autoload"] == ["no"]
    modules = configured_modules(etc / "modules.conf")
    assert len(modules) == len(set(modules))
    for needed in (
        "res_pjsip_pubsub",  # chan_pjsip's dependency
        "res_websocket_client",  # res_ari's
        "res_rtp_multicast",  # chan_rtp's
        "codec_gsm",
        "format_gsm",
        "chan_pjsip",
        "chan_rtp",
        "app_stasis",
        "res_ari_channels",
        "res_stasis_snoop",
        "res_pjsip_endpoint_identifier_ip",
        "res_pjsip_registrar",
        "bridge_softmix",
        "res_timing_timerfd",
    ):
        assert needed in modules, needed


def test_music_on_hold(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    _, etc = rendered
    moh = _section(etc / "musiconhold.conf", "default")
    assert moh["directory"] == [str((tmp_path / "data" / "moh").resolve())]
    empty = tmp_path / "empty"
    empty.mkdir()
    render_asterisk_config(_settings(), SECRETS, tmp_path / "rt2", tmp_path / "mods", PORTS, data_dir=empty)
    moh = _section(tmp_path / "rt2" / "etc" / "musiconhold.conf", "default")
    assert moh["directory"] == [str(empty.resolve() / "sounds/en/silence")]


def test_ports_default_to_settings(tmp_path: Path) -> None:
    settings = _settings(asterisk={"http_port": 8100, "sip_port": 5070, "rtp_port_start": 12000})
    conf = render_asterisk_config(settings, SECRETS, tmp_path, tmp_path / "mods", data_dir=tmp_path)
    assert _section(conf.parent / "http.conf", "general")["bindport"] == ["8100"]
    assert _section(conf.parent / "pjsip.conf", "transport-udp")["bind"] == ["127.0.0.1:5070"]
    assert _section(conf.parent / "rtp.conf", "general")["rtpstart"] == ["12000"]


def test_a_cluster_node_names_its_channels(tmp_path: Path, rendered: tuple[Path, Path]) -> None:
    assert "systemname" not in _section(rendered[0], "options")  # one box: channel ids as Asterisk makes them
    settings = _settings(asterisk={"system_name": "node2"})
    conf = render_asterisk_config(settings, SECRETS, tmp_path / "n2", tmp_path / "mods", PORTS, data_dir=tmp_path)
    assert _section(conf, "options")["systemname"] == ["node2"]


def test_password_escaping(tmp_path: Path) -> None:
    secrets = Secrets(ari_password="a;b", operator_passwords=SECRETS.operator_passwords)
    conf = render_asterisk_config(_settings(), secrets, tmp_path, tmp_path / "m", PORTS, data_dir=tmp_path)
    assert "password = a\\;b" in (conf.parent / "ari.conf").read_text()
    bad = Secrets(ari_password="a\nb", operator_passwords=SECRETS.operator_passwords)
    with pytest.raises(RenderError, match="line break"):
        render_asterisk_config(_settings(), bad, tmp_path, tmp_path / "m", PORTS, data_dir=tmp_path)


def test_long_runtime_dir_gets_short_socket_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    dirs = asterisk_dirs(deep, tmp_path, tmp_path, tmp_path)
    assert len(str(dirs.control_socket)) <= 100
    assert dirs.run == asterisk_dirs(deep, tmp_path, tmp_path, tmp_path).run  # stable across restarts
    short = asterisk_dirs(tmp_path / "rt", tmp_path, tmp_path, tmp_path)
    assert short.run == (tmp_path / "rt" / "run").resolve()
