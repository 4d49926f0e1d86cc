"""Each conversation recorded: Asterisk records the call's bridge (every party, mixed) from the moment an operator
answers until the bridge goes; at the call's end the file is fetched over ARI into the recordings folder (one WAV
per call, 0600, in 0700 folders per day), removed from Asterisk, and announced on the bus (`call.recorded`), where
the desk's history takes it. Files older than the retention are deleted. Recording never holds up or ends a call:
a failure is logged and the call goes on unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import structlog

from events import contract
from events.bus import EventBus
from events.contract import CallFields
from voice.ari import AriError, AriNotFound, AriRestClient

log = structlog.get_logger(__name__)

FETCH_TRIES = 30  # Asterisk finishes the file just after the bridge goes: wait up to ~3 s for it
PRUNE_EVERY_S = 3600.0
STOP_TIMEOUT_S = 10.0


def _whole_wav(data: bytes) -> bool:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            return bool(wav.getnframes() > 0)
    except (wave.Error, EOFError):
        return False


def file_stem(call_id: str) -> str:
    """A call id as a file name (ids come from Asterisk, but a path is built from it)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120] or "call"


class CallRecorder:
    def __init__(self, rest: AriRestClient, folder: Path, bus: EventBus, retention_days: float = 180.0) -> None:
        self.rest = rest
        self.folder = folder
        self.bus = bus
        self.retention_days = retention_days
        self.stored = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._pruner: asyncio.Task[None] | None = None

    def start_pruning(self) -> None:
        if self._pruner is None:
            self._pruner = asyncio.create_task(self._prune_loop(), name="recordings-prune")

    async def start(self, call_id: str, bridge_id: str) -> str | None:
        """Record the bridge; the recording's name, or None if Asterisk refused (the call goes on)."""
        name = f"hotline-{file_stem(call_id)}"
        try:
            await self.rest.record_bridge(bridge_id, name)
        except AriError as exc:
            log.warning("recording.not_started", call_id=call_id, error=str(exc))
            return None
        return name

    def finish(self, call: CallFields, name: str) -> None:
        """The call ended (its bridge is gone): store the recording in the background."""
        task = asyncio.create_task(self._store(call, name), name=f"recording-{call['call_id']}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def stop(self) -> None:
        """Store the recordings of the calls just ended (a few seconds at most), then stop pruning."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=STOP_TIMEOUT_S)
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner

    async def _store(self, call: CallFields, name: str) -> None:
        call_id = call["call_id"]
        try:
            data = await self._fetch(name)
            if data is None:
                log.error("recording.missing", call_id=call_id, name=name)
                return
            relative = Path(datetime.now(UTC).strftime("%Y-%m-%d")) / f"{file_stem(call_id)}.wav"
            seconds = await asyncio.to_thread(self._write, self.folder / relative, data)
            with contextlib.suppress(AriError):
                await self.rest.delete_stored_recording(name)
        except (AriError, OSError, wave.Error) as exc:
            log.error("recording.store_failed", call_id=call_id, error=str(exc))
            return
        self.stored += 1
        log.info("recording.stored", call_id=call_id, file=str(relative), seconds=round(seconds, 1))
        self.bus.send(
            contract.CallRecorded(**call, recording=str(relative), seconds=round(seconds, 2), bytes=len(data))
        )

    async def _fetch(self, name: str) -> bytes | None:
        """The finished file: Asterisk lists it as soon as it opens it, and writes the WAV header's sizes when it
        closes it, so a file that is not yet a whole WAV is fetched again (the last one fetched after the tries)."""
        data: bytes | None = None
        for attempt in range(FETCH_TRIES):
            try:
                data = await self.rest.stored_recording_file(name)
                if _whole_wav(data):
                    return data
            except AriNotFound:
                pass
            await asyncio.sleep(0.1 if attempt < 10 else 0.2)
        return data

    @staticmethod
    def _write(path: Path, data: bytes) -> float:
        with wave.open(io.BytesIO(data)) as wav:  # a WAV, or wave.Error before anything is written
            seconds = float(wav.getnframes()) / float(wav.getframerate() or 1)
        for folder in (path.parent.parent, path.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
            folder.chmod(0o700)  # callers' voices: only the gateway's user reads them
        partial = path.with_suffix(".part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        partial.replace(path)
        return seconds

    async def _prune_loop(self) -> None:
        while True:
            try:
                gone = await asyncio.to_thread(self.prune, time.time() - self.retention_days * 86400)
                if gone:
                    log.info("recording.pruned", files=gone)
            except OSError as exc:
                log.error("recording.prune_failed", error=str(exc))
            await asyncio.sleep(PRUNE_EVERY_S)

    def prune(self, cutoff: float) -> int:
        """Delete recordings last written before `cutoff` (Unix time), and the day folders left empty."""
        if not self.folder.is_dir():
            return 0
        gone = 0
        for path in self.folder.glob("*/*.wav"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                gone += 1
        for day in self.folder.iterdir():
            if day.is_dir() and not any(day.iterdir()):
                day.rmdir()
        return gone
