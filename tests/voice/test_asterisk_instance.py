"""A real Asterisk 22 run by AsteriskInstance: ARI, modules, PJSIP endpoints, lifecycle, start failures."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest
import websockets

from hotline.settings import load_settings
from tests.support.asterisk_fixture import AsteriskFactory, free_ports, make_settings
from voice.asterisk.installer import InstallResult, asterisk_command
from voice.asterisk.instance import AsteriskInstance, AsteriskStartError
from voice.asterisk.render import configured_modules

slow = pytest.mark.slow


def _ari(instance: AsteriskInstance, path: str) -> httpx.Response:
    auth = (instance.ari_username, instance.ari_password)
    return httpx.get(f"{instance.ari_url}{path}", auth=auth, timeout=5)


# ---------------------------------------------------------------- a tiny SIP UA over UDP (no dependencies)
def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # SIP digest authentication is MD5


class _Sip:
    def __init__(self, port: int) -> None:
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.local = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(8)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, uri: str, user: str, extra: str = "") -> tuple[int, str]:
        self.cseq += 1
        msg = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.local};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{user}@127.0.0.1>\r\n"
            f"Call-ID: {self.call_id}@127.0.0.1\r\n"
            f"CSeq: {self.cseq} {method}\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{self.local}>\r\n"
            f"{extra}Content-Length: 0\r\n\r\n"
        )
        self.sock.sendto(msg.encode(), self.server)
        while True:  # skip provisional responses
            text = self.sock.recv(65535).decode(errors="replace")
            code = int(text.split(" ", 2)[1])
            if code >= 200:
                return code, text

    def invite(self, number: str, caller: str) -> str:
        """Send an INVITE offering PCMU; return the Call-ID (read the answer with `final`)."""
        self.cseq += 1
        self.tag = secrets.token_hex(4)
        self.branch = f"z9hG4bK{secrets.token_hex(6)}"
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
        self.invite_uri = f"sip:{number}@127.0.0.1:{self.server[1]}"
        msg = (
            f"INVITE {self.invite_uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.local};branch={self.branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{caller}@127.0.0.1>;tag={self.tag}\r\n"
            f"To: <sip:{number}@127.0.0.1>\r\n"
            f"Call-ID: {self.call_id}@127.0.0.1\r\n"
            f"CSeq: {self.cseq} INVITE\r\n"
            f"Contact: <sip:{caller}@127.0.0.1:{self.local}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        self.sock.sendto(msg.encode(), self.server)
        return self.call_id

    def final(self) -> int:
        """Wait for the INVITE's final response; ACK it if it is a failure (as a UAC must)."""
        while True:
            text = self.sock.recv(65535).decode(errors="replace")
            if not text.startswith("SIP/2.0"):
                continue
            code = int(text.split(" ", 2)[1])
            if code < 200:
                continue
            if code >= 300:
                to = re.search(r"^To: (.*)$", text, re.M | re.I)
                assert to
                ack = (
                    f"ACK {self.invite_uri} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{self.local};branch={self.branch};rport\r\n"
                    "Max-Forwards: 70\r\n"
                    f"From: <sip:x@127.0.0.1>;tag={self.tag}\r\n"
                    f"To: {to.group(1).strip()}\r\n"
                    f"Call-ID: {self.call_id}@127.0.0.1\r\n"
                    f"CSeq: {self.cseq} ACK\r\nContent-Length: 0\r\n\r\n"
                )
                self.sock.sendto(ack.encode(), self.server)
            return code

    def register(self, user: str, password: str, expires: int = 60) -> int:
        uri = f"sip:127.0.0.1:{self.server[1]}"
        code, text = self.request("REGISTER", uri, user, f"Expires: {expires}\r\n")
        if code != 401:
            return code
        challenge = re.search(r"^WWW-Authenticate: Digest (.*)$", text, re.M | re.I)
        assert challenge, text
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
        ha1 = _md5(f"{user}:{params['realm']}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        response = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        auth = (
            f'Authorization: Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
            f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
            + (f', opaque="{params["opaque"]}"' if "opaque" in params else "")
            + "\r\n"
        )
        code, _ = self.request("REGISTER", uri, user, f"Expires: {expires}\r\n{auth}")
        return code


# ---------------------------------------------------------------- the shared instance
@slow
def test_ari_answers_with_asterisk_22(asterisk: AsteriskInstance, asterisk_install: InstallResult) -> None:
    reply = _ari(asterisk, "/asterisk/info")
    assert reply.status_code == 200
    version = reply.json()["system"]["version"]
    assert version.startswith("22.")
    assert version.startswith(asterisk_install.version)
    assert asterisk.ari_url == f"http://127.0.0.1:{asterisk.http_port}/ari"
    assert _ari(asterisk, "/asterisk/info").status_code == 200
    wrong = httpx.get(f"{asterisk.ari_url}/asterisk/info", auth=(asterisk.ari_username, "wrong"), timeout=5)
    assert wrong.status_code == 401


@slow
def test_every_configured_module_is_loaded(asterisk: AsteriskInstance) -> None:
    wanted = configured_modules(asterisk.dirs.etc / "modules.conf")
    reply = _ari(asterisk, "/asterisk/modules")
    running = {m["name"].removesuffix(".so") for m in reply.json() if m["status"] == "Running"}
    assert sorted(set(wanted) - running) == []


@slow
async def test_pjsip_endpoints_and_dialplan(asterisk: AsteriskInstance) -> None:
    endpoints = await asterisk.rx("pjsip show endpoints")
    for name in ("callers", "op1001", "op1002"):
        assert re.search(rf"Endpoint:\s+{name}\b", endpoints), endpoints
    assert f"127.0.0.1:{asterisk.sip_port}" in endpoints
    ari = {e["resource"] for e in _ari(asterisk, "/endpoints/PJSIP").json()}
    assert {"callers", "op1001", "op1002"} <= ari
    dialplan = await asterisk.rx("dialplan show 12345@from-callers")
    assert "Stasis(hotline)" in dialplan


@slow
async def test_rtp_range_applied(asterisk: AsteriskInstance) -> None:
    text = await asterisk.rx("rtp show settings")
    span = asterisk.settings.telephony.max_concurrent_calls * asterisk.settings.asterisk.rtp_ports_per_call
    assert re.search(rf"Port start:\s+{asterisk.ports.rtp_start}\b", text), text
    assert re.search(rf"Port end:\s+{asterisk.ports.rtp_start + span}\b", text), text


@slow
def test_packaged_sounds_resolve(asterisk: AsteriskInstance) -> None:
    reply = _ari(asterisk, "/sounds/hello-world")
    assert reply.status_code == 200
    assert {"language": "en", "format": "gsm"} in reply.json()["formats"]


@slow
def test_callers_identified_by_address(asterisk: AsteriskInstance) -> None:
    sip = _Sip(asterisk.sip_port)
    try:
        # An unauthenticated OPTIONS is answered 200 only if 127.0.0.1 matches the callers' identify.
        code, _ = sip.request("OPTIONS", f"sip:12345@127.0.0.1:{asterisk.sip_port}", "13800000000")
        assert code == 200
    finally:
        sip.close()


@slow
async def test_operator_registers_with_generated_password(asterisk: AsteriskInstance) -> None:
    password = asterisk.secrets.operator_password("op1001")
    sip = _Sip(asterisk.sip_port)
    try:
        assert sip.register("op1001", "not-the-password") in (401, 403)
        assert sip.register("op1001", password) == 200
        contacts = await asterisk.rx("pjsip show contacts")
        assert f"op1001/sip:op1001@127.0.0.1:{sip.local}" in contacts
        assert sip.register("op1001", password, expires=0) == 200  # leave the shared instance clean
    finally:
        sip.close()


@slow
async def test_call_to_entry_number_reaches_stasis(asterisk_factory: AsteriskFactory) -> None:
    # Dialplan, chan_pjsip, caller identification and Stasis together. Own instance: it uses the ARI app.
    instance = await asterisk_factory()
    auth = f"{instance.ari_username}:{instance.ari_password}"
    url = f"ws://127.0.0.1:{instance.http_port}/ari/events?app={instance.settings.ari.app}&api_key={auth}"
    sip = _Sip(instance.sip_port)
    try:
        async with websockets.connect(url) as events:  # connected before the call (DESIGN §5)
            sip.invite(instance.settings.telephony.entry_number, "13800138000")
            event = json.loads(await asyncio.wait_for(events.recv(), 5))
            assert event["type"] == "StasisStart"
            channel = event["channel"]
            assert channel["dialplan"]["exten"] == "12345"
            assert channel["caller"]["number"] == "13800138000"
            assert channel["name"].startswith("PJSIP/callers-")
            async with httpx.AsyncClient(auth=(instance.ari_username, instance.ari_password)) as ari:
                reply = await ari.delete(f"{instance.ari_url}/channels/{channel['id']}")
                assert reply.status_code == 204
            assert 400 <= await asyncio.to_thread(sip.final) < 700
    finally:
        sip.close()


@slow
def test_other_numbers_are_refused(asterisk: AsteriskInstance) -> None:
    sip = _Sip(asterisk.sip_port)
    try:
        sip.invite("999", "13800138000")
        assert sip.final() == 404  # Hangup(1): unallocated number
    finally:
        sip.close()


@slow
def test_secrets_file_is_private(asterisk: AsteriskInstance) -> None:
    path = asterisk.runtime_dir / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert asterisk.ari_password in path.read_text()
    assert stat.S_IMODE(asterisk.dirs.etc.stat().st_mode) == 0o700


# ---------------------------------------------------------------- own instances
@slow
async def test_stop_leaves_no_process_and_restart_keeps_secrets(asterisk_factory: AsteriskFactory) -> None:
    instance = await asterisk_factory()
    assert instance.startup_seconds is not None and instance.startup_seconds < 10
    pid, password = instance.pid, instance.ari_password
    assert pid is not None and instance.running
    await instance.restart()
    assert instance.running and instance.pid != pid
    assert instance.ari_password == password
    assert _ari(instance, "/asterisk/info").status_code == 200
    pid = instance.pid
    assert pid is not None
    started = time.monotonic()
    await instance.stop()
    assert time.monotonic() - started < 6
    assert not instance.running and instance.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        _ari(instance, "/asterisk/info")
    await instance.stop()  # idempotent


@slow
async def test_port_in_use_is_a_clear_error(asterisk_factory: AsteriskFactory) -> None:
    settings = make_settings()
    ports = free_ports(settings)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", ports.http))
        blocker.listen()
        instance = await asterisk_factory(settings, ports=ports, start=False)
        with pytest.raises(AsteriskStartError, match=rf"port {ports.http}/tcp .*already in use"):
            await instance.start()
    assert not instance.running


@slow
async def test_sip_port_taken_by_another_asterisk(
    asterisk: AsteriskInstance, asterisk_factory: AsteriskFactory
) -> None:
    settings = make_settings()
    ports = free_ports(settings)
    instance = await asterisk_factory(
        settings,
        ports=type(ports)(http=ports.http, sip=asterisk.sip_port, rtp_start=ports.rtp_start),
        start=False,
    )
    with pytest.raises(AsteriskStartError, match=rf"{asterisk.sip_port}/udp"):
        await instance.start()


async def test_process_dying_at_start_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "asterisk"
    fake.write_text("#!/bin/sh\necho 'Unable to load something important' >&2\nexit 3\n")
    fake.chmod(0o755)
    settings = load_settings(asterisk={"mode": "system", "binary": str(fake), "modules_dir": str(tmp_path)})
    instance = AsteriskInstance(settings, runtime_dir=tmp_path / "rt", ports=free_ports(settings))
    started = time.monotonic()
    with pytest.raises(AsteriskStartError) as info:
        await instance.start()
    assert time.monotonic() - started < 5
    assert "exited with status 3" in str(info.value)
    assert "Unable to load something important" in str(info.value)
    assert not instance.running


async def test_not_installed_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(asterisk={"prefix": str(tmp_path / "nothing")})
    instance = AsteriskInstance(settings, runtime_dir=tmp_path / "rt", ports=free_ports(settings))
    with pytest.raises(AsteriskStartError, match="hotline asterisk install"):
        await instance.start()


def test_external_mode_has_no_process() -> None:
    settings = load_settings(asterisk={"mode": "external", "ari_url": "http://x/ari", "ari_password": "p"})
    with pytest.raises(ValueError, match="external"):
        AsteriskInstance(settings)


@slow
async def test_system_mode(asterisk_install: InstallResult, asterisk_factory: AsteriskFactory, tmp_path: Path) -> None:
    # A "system" Asterisk laid out like Debian's (usr/sbin, usr/lib/<triplet>/asterisk/modules,
    # usr/share/asterisk): a wrapper around the embedded binary; module and data folders are found from
    # where it lives.
    usr = tmp_path / "usr"
    (usr / "sbin").mkdir(parents=True)
    (usr / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (usr / "share").mkdir()
    (usr / "lib/x86_64-linux-gnu/asterisk").symlink_to(asterisk_install.prefix / "usr/lib/x86_64-linux-gnu/asterisk")
    (usr / "share/asterisk").symlink_to(asterisk_install.prefix / "usr/share/asterisk")
    wrapper = usr / "sbin/asterisk"
    command = " ".join(asterisk_command(asterisk_install.prefix))
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    instance = await asterisk_factory(make_settings(asterisk={"mode": "system", "binary": str(wrapper)}))
    assert instance.running
    assert instance.dirs.modules == (usr / "lib/x86_64-linux-gnu/asterisk/modules").resolve()
    assert "Asterisk 22." in await instance.rx("core show version")
    assert _ari(instance, "/sounds/hello-world").status_code == 200
