"""A scriptable SIP softphone (pjsua2) for tests and benchmarks, run as its own process.

Protocol: one JSON object per line. Commands arrive on stdin (``{"cmd": "call", "id": "r1", ...}``),
events leave on stdout (``{"event": "state", "t": ..., "wall": ..., ...}``); every command carrying an
``id`` is answered by ``ack`` or ``error`` (with ``message``) carrying that id. ``t`` is
``time.monotonic()`` (CLOCK_MONOTONIC: comparable with the driver's clock), ``wall`` is ``time.time()``.
Nothing else is ever written to stdout: pjsip's console output is redirected to stderr at start-up.

Commands: ``account`` (user, password, registrar, register, display), ``unregister``,
``auto_answer`` (enabled, delay_ms, code), ``call`` (call, uri, headers, record), ``answer`` (call,
code), ``hangup`` (call, code), ``dtmf`` (call, digits, gap_ms, duration_ms), ``record`` / ``stop_record``
(call, wav), ``play`` / ``stop_play`` (call, wav, loop), ``ping``, ``quit``.
Events: ``ready`` (sip_port, pid), ``ack``, ``error``, ``registered`` (account, code, reason,
expiration, active, ok), ``incoming`` (call "inN", from, to, request_line), ``state`` (call, state, code, reason),
``media_active`` (call, codec, clock_rate, remote_rtp), ``media_inactive``, ``dtmf`` (call, digit,
method: digits this phone receives), ``dtmf_sent``, ``dtmf_done``, ``record_started``, ``recorded``
(call, wav, complete, bytes), ``play_started``, ``play_done`` (call, wav, reason: eof, stopped, hangup,
replaced, quit), ``bye`` (just before exit).

Threading (DESIGN §5 traps): the main thread owns pjsua2. It runs SIP with ``threadCnt = 0`` and
``mainThreadOnly``, alternating ``libHandleEvents`` with draining two queues: commands (filled by a
stdin-reader thread that never touches pjsua2) and jobs (closures queued by callbacks). Measured:
SIP and DTMF callbacks then run on the main thread, but the player's ``onEof2`` runs on pjmedia's
clock thread. Callbacks therefore only emit events and queue jobs: creating or destroying media
objects from inside a callback can deadlock (and the event writer is lock-protected for onEof2).

Run: ``python -m tools.softphone.phone [--sip-port N] [--log-file PATH] [--log-level 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import heapq
import itertools
import json
import logging
import os
import queue
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj  # type: ignore[import-not-found,unused-ignore]

log = logging.getLogger("softphone")

MAX_CALLS = 4  # compiled-in limit of the pjsua2 wheel (DESIGN §5)
HOST = "127.0.0.1"

STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}


class CommandError(Exception):
    """A command that cannot be carried out; reported as an ``error`` event."""


def pj_message(exc: BaseException) -> str:
    # str(pj.Error) is empty (DESIGN §5): use its info().
    if isinstance(exc, pj.Error):
        return str(exc.info())
    return f"{type(exc).__name__}: {exc}"


class EventWriter:
    """Serialises events from every thread onto the private stdout descriptor."""

    def __init__(self, fd: int) -> None:
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        msg = {"event": event, "t": time.monotonic(), "wall": time.time(), **fields}
        line = json.dumps(msg, ensure_ascii=False, default=str)
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):
                pass  # the driver is gone; the stdin EOF will shut us down

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._out.flush()


def wav_is_complete(path: str) -> bool:
    """True once the RIFF and data chunk sizes in the header match the file length."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        size = os.path.getsize(path)
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or struct.unpack("<I", head[4:8])[0] != size - 8:
        return False
    pos = 12
    while pos + 8 <= len(head):
        cid = head[pos : pos + 4]
        clen: int = struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"data":
            return pos + 8 + clen == size
        pos += 8 + clen
    return False


@dataclass
class Recording:
    wav: str
    recorder: Any = None  # pj.AudioMediaRecorder once attached to the call's audio


@dataclass
class Playback:
    wav: str
    loop: bool
    player: Any = None  # Player once attached


@dataclass
class CallEntry:
    name: str
    call: Any  # SipCall; referenced here for the call's whole life (GC would hang it up)
    incoming: bool
    media_active: bool = False
    ended: bool = False
    recording: Recording | None = None
    playback: Playback | None = None
    dtmf_timers: list[int] = field(default_factory=list)
    mic_connected: bool = False


class Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, phone: Phone, entry: CallEntry, playback: Playback) -> None:
        super().__init__()
        self.phone, self.entry, self.playback = phone, entry, playback

    def onEof2(self) -> None:  # pjmedia's clock thread: don't destroy the player here
        if not self.playback.loop:
            self.phone.post(lambda: self.phone.finish_playback(self.entry, "eof", self.playback))


class SipCall(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Phone, acc: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.phone = phone
        self.entry: CallEntry | None = None

    def onCallState(self, prm: Any) -> None:
        entry = self.entry
        if entry is None:
            return
        ci = self.getInfo()
        state = STATE_NAMES.get(ci.state, str(ci.state))
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Ended before anyone hears of it: a command sent on the DISCONNECTED event must find it ended
            # (the rest of the clean-up runs later, posted).
            entry.ended = True
        self.phone.out.emit("state", call=entry.name, state=state, code=ci.lastStatusCode, reason=ci.lastReason)
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.phone.post(lambda: self.phone.on_disconnected(entry))

    def onCallMediaState(self, prm: Any) -> None:
        entry = self.entry
        if entry is None:
            return
        ci = self.getInfo()  # keep in a variable before iterating media (DESIGN §5)
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            active = mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE
            if active and not entry.media_active:
                fields: dict[str, Any] = {"call": entry.name}
                try:
                    si = self.getStreamInfo(mi.index)
                    fields.update(codec=si.codecName, clock_rate=si.codecClockRate, remote_rtp=si.remoteRtpAddress)
                except pj.Error:
                    pass
                self.phone.out.emit("media_active", **fields)
                self.phone.post(lambda: self.phone.attach_media(entry))
            elif not active and entry.media_active:
                self.phone.out.emit("media_inactive", call=entry.name, status=int(mi.status))
            entry.media_active = active
            break

    def onDtmfDigit(self, prm: Any) -> None:  # main thread (mainThreadOnly queues it there)
        if self.entry is not None:
            method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
            self.phone.out.emit("dtmf", call=self.entry.name, digit=prm.digit, method=method)


class SipAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone, name: str) -> None:
        super().__init__()
        self.phone, self.name = phone, name
        self.unregistering = False  # set at shutdown, cleared by the registrar's answer

    def onRegState(self, prm: Any) -> None:
        try:
            active = bool(self.getInfo().regIsActive)
        except pj.Error:
            active = False
        self.unregistering = False
        self.phone.out.emit(
            "registered",
            account=self.name,
            code=prm.code,
            reason=prm.reason,
            expiration=prm.expiration,
            active=active,
            ok=200 <= prm.code < 300,
        )

    def onIncomingCall(self, prm: Any) -> None:
        request_line = str(prm.rdata.wholeMsg).split("\r\n", 1)[0]  # "INVITE sip:...;transport=TLS SIP/2.0"
        self.phone.on_incoming(self, prm.callId, request_line)


class Phone:
    def __init__(self, out: EventWriter, args: argparse.Namespace) -> None:
        self.out = out
        self.args = args
        self.commands: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.cancelled: set[int] = set()
        self.seq = itertools.count()
        self.calls: dict[str, CallEntry] = {}
        self.finished: list[CallEntry] = []  # ended calls stay referenced until shutdown
        self.accounts: list[SipAccount] = []
        self.account: SipAccount | None = None
        self.incoming_seq = itertools.count(1)
        self.auto_answer = {"enabled": False, "delay_ms": 0, "code": 200}
        self.quitting = False
        self.ep = pj.Endpoint()
        self.sip_port = 0

    # -- set-up ---------------------------------------------------------------------------------------

    def start(self) -> None:
        ep = self.ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0  # SIP runs in the main thread's libHandleEvents
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = MAX_CALLS
        cfg.uaConfig.userAgent = "hotline-test-softphone"
        cfg.logConfig.level = self.args.log_level
        cfg.logConfig.consoleLevel = self.args.log_level
        if self.args.log_file:
            cfg.logConfig.filename = self.args.log_file
        cfg.medConfig.clockRate = self.args.clock_rate
        cfg.medConfig.sndClockRate = self.args.clock_rate
        cfg.medConfig.ecTailLen = 0  # no echo canceller: we want exactly what arrives
        cfg.medConfig.noVad = True
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()  # after libInit (DESIGN §5)

        tcfg = pj.TransportConfig()
        tcfg.port = self.args.sip_port
        tcfg.boundAddress = self.args.host
        tcfg.publicAddress = self.args.host
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.tls_transport: int | None = None
        if self.args.tls_ca:  # SIP over TLS too, trusting only this certificate (the gateway's self-signed one)
            tls = pj.TransportConfig()
            tls.port = 0
            tls.boundAddress = self.args.host
            tls.tlsConfig.CaListFile = self.args.tls_ca
            tls.tlsConfig.verifyServer = True
            tls.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            self.tls_transport = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls)
        ep.libStart()
        self.sip_port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        self.set_codecs(self.args.codecs.split(","))
        self.account = self.create_account(user=self.args.user)

    def set_codecs(self, wanted: list[str]) -> None:
        wanted_upper = [w.strip().upper() for w in wanted if w.strip()]
        for ci in self.ep.codecEnum2():
            name = ci.codecId.split("/")[0].upper()
            prio = 255 - wanted_upper.index(name) if name in wanted_upper else 0
            self.ep.codecSetPriority(ci.codecId, prio)

    def create_account(
        self,
        user: str,
        password: str = "",
        registrar: str = "",
        register: bool = False,
        display: str = "",
        tls: bool = False,
    ) -> SipAccount:
        acfg = pj.AccountConfig()
        if tls and self.tls_transport is None:
            raise CommandError("start the softphone with --tls-ca for a TLS account")
        if tls:
            acfg.sipConfig.transportId = self.tls_transport
        if self.tls_transport is not None:
            # Every account of a TLS phone: pjsua may hand an incoming call to any account of the same user.
            # mandatory: a call without SRTP fails (488); optional: SRTP when the other side offers it
            acfg.mediaConfig.srtpUse = (
                pj.PJMEDIA_SRTP_MANDATORY if self.args.srtp == "mandatory" else pj.PJMEDIA_SRTP_OPTIONAL
            )
            acfg.mediaConfig.srtpSecureSignaling = 0  # the TLS account sends only over its TLS transport
        if registrar:
            domain = registrar.split(":", 1)[1] if registrar.startswith("sip:") else registrar
            acfg.idUri = f"sip:{user}@{domain}"
            acfg.regConfig.registrarUri = registrar
            acfg.regConfig.registerOnAdd = register
        else:
            acfg.idUri = f"sip:{user}@{self.args.host}:{self.sip_port}"
        if display:
            acfg.idUri = f'"{display}" <{acfg.idUri}>'
        if password:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        # Loopback only: no NAT tricks that would rewrite Contact/Via/SDP and re-register.
        nat = acfg.natConfig
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.sipOutboundUse = 0
        nat.udpKaIntervalSec = 0
        mtc = acfg.mediaConfig.transportConfig
        mtc.boundAddress = self.args.host
        mtc.publicAddress = self.args.host
        mtc.port = self.args.rtp_port
        mtc.randomizePort = self.args.rtp_port == 0  # many phones in parallel: avoid port races
        acc = SipAccount(self, user)
        acc.create(acfg, True)  # newest account becomes the default (incoming/outgoing)
        self.accounts.append(acc)
        return acc

    # -- main loop ---------------------------------------------------------------------------------------

    def post(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)

    def schedule(self, delay_s: float, fn: Callable[[], None]) -> int:
        seq = next(self.seq)
        heapq.heappush(self.timers, (time.monotonic() + delay_s, seq, fn))
        return seq

    def run(self) -> None:
        self.out.emit("ready", sip_port=self.sip_port, pid=os.getpid())
        while not self.quitting:
            self.ep.libHandleEvents(self._poll_ms())
            self._run_pending()
        self.shutdown()

    def _poll_ms(self) -> int:
        if not self.jobs.empty() or not self.commands.empty():
            return 0
        wait = 10.0
        if self.timers:
            wait = min(wait, max(0.0, (self.timers[0][0] - time.monotonic()) * 1000))
        return int(wait)

    def _run_pending(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            self._guard(job)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, seq, fn = heapq.heappop(self.timers)
            if seq in self.cancelled:
                self.cancelled.discard(seq)
            else:
                self._guard(fn)
        while not self.quitting:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                break
            if cmd is None:  # stdin closed: our driver is gone
                self.quitting = True
            else:
                self.handle(cmd)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:
            log.exception("internal job failed")
            self.out.emit("error", message=pj_message(exc))

    def handle(self, cmd: dict[str, Any]) -> None:
        req_id = cmd.get("id")
        name = cmd.get("cmd")
        handler = getattr(self, f"cmd_{name}", None) if isinstance(name, str) else None
        try:
            if handler is None:
                raise CommandError(f"unknown command {name!r}")
            extra = handler(cmd) or {}
        except (CommandError, pj.Error, KeyError, TypeError, ValueError) as exc:
            msg = f"missing field {exc}" if isinstance(exc, KeyError) else pj_message(exc)
            if isinstance(exc, CommandError):
                msg = str(exc)
            self.out.emit("error", id=req_id, cmd=name, message=msg)
            return
        self.out.emit("ack", id=req_id, cmd=name, **extra)

    # -- helpers -------------------------------------------------------------------------------------

    def entry(self, cmd: dict[str, Any]) -> CallEntry:
        name = cmd["call"]
        entry = self.calls.get(name)
        if entry is None:
            raise CommandError(f"no such call {name!r}")
        return entry

    def live(self, cmd: dict[str, Any]) -> CallEntry:
        entry = self.entry(cmd)
        if entry.ended:
            raise CommandError(f"call {entry.name!r} has ended")
        return entry

    def audio_media(self, entry: CallEntry) -> Any:
        ci = entry.call.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return entry.call.getAudioMedia(mi.index)
        return None

    def active_calls(self) -> int:
        return sum(1 for e in self.calls.values() if not e.ended)

    def adopt(self, entry: CallEntry) -> None:
        old = self.calls.get(entry.name)
        if old is not None:
            self.finished.append(old)
        self.calls[entry.name] = entry

    # -- callbacks' main-thread halves ----------------------------------------------------------------

    def on_incoming(self, acc: SipAccount, call_id: int, request_line: str = "") -> None:
        call = SipCall(self, acc, call_id)
        entry = CallEntry(name=f"in{next(self.incoming_seq)}", call=call, incoming=True)
        call.entry = entry
        self.adopt(entry)
        ci = call.getInfo()
        self.out.emit(
            "incoming",
            call=entry.name,
            account=acc.name,
            to=ci.localUri,
            sip_call_id=ci.callIdString,
            request_line=request_line,
            **{"from": ci.remoteUri},
        )
        self.post(lambda: self._ring_or_answer(entry))

    def _ring_or_answer(self, entry: CallEntry) -> None:
        if entry.ended:
            return
        self._answer(entry, 180)
        aa = self.auto_answer
        if aa["enabled"]:
            code = int(aa["code"])

            def answer() -> None:
                if not entry.ended:
                    self._answer(entry, code)

            self.schedule(int(aa["delay_ms"]) / 1000, answer)

    def _answer(self, entry: CallEntry, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if code >= 300:
            entry.call.hangup(prm)
        else:
            entry.call.answer(prm)

    def attach_media(self, entry: CallEntry) -> None:
        if entry.ended:
            return
        aud = self.audio_media(entry)
        if aud is None:
            return
        if not entry.mic_connected:
            # Like a real phone's microphone, the (null) capture device feeds the call all the time. Without a
            # source pjmedia soon stops sending RTP, and RFC 2833 digits queued after that never leave.
            self.ep.audDevManager().getCaptureDevMedia().startTransmit(aud)
            entry.mic_connected = True
        rec = entry.recording
        if rec is not None and rec.recorder is None:
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(rec.wav)
            aud.startTransmit(recorder)
            rec.recorder = recorder
            self.out.emit("record_started", call=entry.name, wav=rec.wav)
        pb = entry.playback
        if pb is not None and pb.player is None:
            player = Player(self, entry, pb)
            player.createPlayer(pb.wav, 0 if pb.loop else pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(aud)
            pb.player = player
            self.out.emit("play_started", call=entry.name, wav=pb.wav)

    def on_disconnected(self, entry: CallEntry) -> None:
        entry.ended = True
        entry.media_active = False
        for seq in entry.dtmf_timers:
            self.cancelled.add(seq)
        if entry.dtmf_timers:  # whoever waits for the digits learns that the call ended first
            self.out.emit("dtmf_done", call=entry.name, reason="hangup")
        entry.dtmf_timers.clear()
        if entry.playback is not None:
            self.finish_playback(entry, "hangup", entry.playback)
        if entry.recording is not None:
            self.finish_recording(entry)

    def finish_playback(self, entry: CallEntry, reason: str, playback: Playback) -> None:
        if entry.playback is not playback:
            return  # already stopped or replaced
        entry.playback = None
        player, playback.player = playback.player, None
        if player is not None:
            del player  # destroying the player removes it from the conference bridge
        self.out.emit("play_done", call=entry.name, wav=playback.wav, reason=reason)

    def finish_recording(self, entry: CallEntry) -> None:
        rec, entry.recording = entry.recording, None
        if rec is None:
            return
        if rec.recorder is None:  # media never came up: nothing was recorded
            self.out.emit("recorded", call=entry.name, wav=rec.wav, complete=False, bytes=0)
            return
        recorder, rec.recorder = rec.recorder, None
        del recorder  # the WAV header is finalised shortly after (asynchronous port removal)
        deadline = time.monotonic() + 2.0

        def check() -> None:
            done = wav_is_complete(rec.wav)
            if done or time.monotonic() > deadline:
                size = os.path.getsize(rec.wav) if os.path.exists(rec.wav) else 0
                self.out.emit("recorded", call=entry.name, wav=rec.wav, complete=done, bytes=size)
            else:
                self.schedule(0.01, check)

        self.schedule(0.01, check)

    # -- commands --------------------------------------------------------------------------------------

    def cmd_ping(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return {"calls": self.active_calls()}

    def cmd_account(self, cmd: dict[str, Any]) -> dict[str, Any]:
        registrar = str(cmd.get("registrar", ""))
        acc = self.create_account(
            user=str(cmd["user"]),
            password=str(cmd.get("password", "")),
            registrar=registrar,
            register=bool(cmd.get("register", bool(registrar))),
            display=str(cmd.get("display", "")),
            tls=bool(cmd.get("tls", False)),
        )
        self.account = acc
        return {"account": acc.name}

    def cmd_unregister(self, cmd: dict[str, Any]) -> None:
        if self.account is None:
            raise CommandError("no account")
        self.account.setRegistration(False)

    def cmd_auto_answer(self, cmd: dict[str, Any]) -> None:
        self.auto_answer = {
            "enabled": bool(cmd.get("enabled", True)),
            "delay_ms": int(cmd.get("delay_ms", 0)),
            "code": int(cmd.get("code", 200)),
        }

    def cmd_call(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = str(cmd["call"])
        if name in self.calls and not self.calls[name].ended:
            raise CommandError(f"call {name!r} is still active")
        if self.active_calls() >= MAX_CALLS:
            raise CommandError(f"at most {MAX_CALLS} calls per softphone process")
        uri = str(cmd["uri"])
        call = SipCall(self, self.account)
        entry = CallEntry(name=name, call=call, incoming=False)
        call.entry = entry
        if "record" in cmd:  # record from the first packet on
            entry.recording = Recording(wav=str(cmd["record"]))
        prm = pj.CallOpParam(True)
        for hname, hval in dict(cmd.get("headers", {})).items():
            h = pj.SipHeader()
            h.hName, h.hValue = str(hname), str(hval)
            prm.txOption.headers.append(h)
        self.adopt(entry)
        try:
            call.makeCall(uri, prm)
        except pj.Error:
            entry.ended = True
            raise
        return {"call": name, "sip_call_id": call.getInfo().callIdString}

    def cmd_answer(self, cmd: dict[str, Any]) -> None:
        self._answer(self.live(cmd), int(cmd.get("code", 200)))

    def cmd_hangup(self, cmd: dict[str, Any]) -> None:
        entry = self.live(cmd)
        prm = pj.CallOpParam(True)
        prm.statusCode = int(cmd.get("code", 0))
        entry.call.hangup(prm)

    def cmd_dtmf(self, cmd: dict[str, Any]) -> None:
        entry = self.live(cmd)
        digits = str(cmd["digits"])
        if not entry.media_active:
            raise CommandError("no active audio on this call")
        gap = int(cmd.get("gap_ms", 150)) / 1000
        duration_ms = int(cmd.get("duration_ms", 100))
        step = duration_ms / 1000 + gap
        # One digit per timer: sendDtmf has no inter-digit gap setting.
        for i, digit in enumerate(digits):
            last = i == len(digits) - 1
            send = functools.partial(self._send_digit, entry, digit, duration_ms, last)
            entry.dtmf_timers.append(self.schedule(i * step, send))

    def _send_digit(self, entry: CallEntry, digit: str, duration_ms: int, last: bool) -> None:
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = digit
        prm.duration = duration_ms
        entry.call.sendDtmf(prm)
        self.out.emit("dtmf_sent", call=entry.name, digit=digit)
        if last:
            # Done once the last event has been on the wire for its whole duration: a digit queued while the
            # previous one is still being sent is lost by the far end.
            def done() -> None:
                entry.dtmf_timers.clear()
                self.out.emit("dtmf_done", call=entry.name)

            entry.dtmf_timers.append(self.schedule(duration_ms / 1000 + 0.1, done))

    def cmd_record(self, cmd: dict[str, Any]) -> dict[str, Any]:
        entry = self.live(cmd)
        if entry.recording is not None:
            raise CommandError("already recording this call")
        wav = str(cmd["wav"])
        if not wav.lower().endswith(".wav"):
            raise CommandError("recording path must end in .wav")
        entry.recording = Recording(wav=wav)
        self.attach_media(entry)  # now, or when media comes up
        return {"pending": entry.recording.recorder is None}

    def cmd_stop_record(self, cmd: dict[str, Any]) -> None:
        entry = self.entry(cmd)
        if entry.recording is None:
            raise CommandError("not recording this call")
        self.finish_recording(entry)

    def cmd_play(self, cmd: dict[str, Any]) -> dict[str, Any]:
        entry = self.live(cmd)
        wav = str(cmd["wav"])
        if not os.path.isfile(wav):
            raise CommandError(f"no such file {wav!r}")
        if entry.playback is not None:
            self.finish_playback(entry, "replaced", entry.playback)
        entry.playback = Playback(wav=wav, loop=bool(cmd.get("loop", False)))
        self.attach_media(entry)
        return {"pending": entry.playback.player is None}

    def cmd_stop_play(self, cmd: dict[str, Any]) -> None:
        entry = self.entry(cmd)
        if entry.playback is None:
            raise CommandError("not playing on this call")
        self.finish_playback(entry, "stopped", entry.playback)

    def cmd_quit(self, cmd: dict[str, Any]) -> None:
        self.quitting = True

    # -- shutdown ------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """DESIGN §5 order: calls, accounts, gc, libDestroy; the caller then os._exit(0)s."""
        if self.active_calls():
            self.ep.hangupAllCalls()
            deadline = time.monotonic() + 2.0
            while self.active_calls() and time.monotonic() < deadline:
                self.ep.libHandleEvents(10)
                self._run_jobs_and_timers()
        self._finish_media()
        deadline = time.monotonic() + 2.0
        while self.timers and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
            self._run_jobs_and_timers()
        self._unregister()
        self._drop_pj_objects()
        # A pjsua2 object destroyed after libDestroy asserts (Call's destructor → call id out of range).
        leftovers = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (SipCall, SipAccount, Player))]
        if leftovers:
            log.warning("pjsua2 objects still alive at libDestroy: %s", leftovers)
        self.out.emit("bye")
        # We unregistered and hung up ourselves: skip libDestroy's fixed 1 s wait for the network.
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)

    def _unregister(self) -> None:
        pending = []
        for acc in self.accounts:
            with contextlib.suppress(pj.Error):
                if acc.getInfo().regIsActive:
                    acc.unregistering = True
                    acc.setRegistration(False)
                    pending.append(acc)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(a.unregistering for a in pending):
            self.ep.libHandleEvents(10)

    def _finish_media(self) -> None:
        # Finish players and recordings so that the WAVs are complete before we go.
        for entry in list(self.calls.values()):
            if entry.playback is not None:
                self.finish_playback(entry, "quit", entry.playback)
            if entry.recording is not None:
                self.finish_recording(entry)

    def _drop_pj_objects(self) -> None:
        # A helper, so that no loop variable in shutdown()'s frame keeps a Call alive.
        self.timers.clear()
        while not self.jobs.empty():
            self.jobs.get_nowait()
        for entry in [*self.calls.values(), *self.finished]:
            entry.call.entry = None
        self.calls.clear()
        self.finished.clear()
        for acc in self.accounts:
            with contextlib.suppress(pj.Error):
                acc.shutdown()
        self.accounts.clear()
        self.account = None
        gc.collect()

    def _run_jobs_and_timers(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            self._guard(job)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, seq, fn = heapq.heappop(self.timers)
            if seq not in self.cancelled:
                self._guard(fn)


def read_stdin(phone: Phone) -> None:
    """Stdin reader thread: parses lines into the command queue; never touches pjsua2."""
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict):
                raise ValueError("a command must be a JSON object")
        except ValueError as exc:
            phone.out.emit("error", id=None, message=f"bad command line: {exc}")
            continue
        phone.commands.put(cmd)
    phone.commands.put(None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sip-port", type=int, default=0, help="UDP SIP port (0: any)")
    ap.add_argument("--tls-ca", default="", help="also open a TLS transport that trusts this PEM certificate")
    ap.add_argument(
        "--srtp", choices=("mandatory", "optional"), default="mandatory", help="SRTP on the accounts of a TLS phone"
    )
    ap.add_argument("--host", default=HOST, help="loopback address to bind SIP and RTP to (127.0.0.2: another host)")
    ap.add_argument("--rtp-port", type=int, default=0, help="first RTP port (0: random)")
    ap.add_argument("--user", default="softphone", help="user part of the anonymous account")
    ap.add_argument("--codecs", default="PCMU,PCMA", help="enabled codecs, by priority")
    ap.add_argument("--clock-rate", type=int, default=8000, help="conference bridge rate (Hz)")
    ap.add_argument("--log-level", type=int, default=3, help="pjsip log level 0..6")
    ap.add_argument("--log-file", default="", help="pjsip log file (default: stderr)")
    args = ap.parse_args(argv)

    # Keep the real stdout for events only; anything native writes to fd 1 lands in stderr.
    event_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s softphone[%(process)d] %(levelname)s %(message)s",
    )
    out = EventWriter(event_fd)
    phone = Phone(out, args)

    def on_signal(signum: int, frame: object) -> None:
        phone.commands.put(None)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        phone.start()
        threading.Thread(target=read_stdin, args=(phone,), name="stdin", daemon=True).start()
        phone.run()
    except Exception as exc:
        log.exception("softphone failed")
        out.emit("error", id=None, message=f"fatal: {pj_message(exc)}")
        code = 1
    out.close()
    sys.stderr.flush()
    os._exit(code)  # a normal interpreter exit after libDestroy aborts (code 134)


if __name__ == "__main__":
    main()
