"""The gateway's side of recognition as a service: an `AsrEngine` whose streams run on a pool of ASR workers.

One WebSocket per worker carries all of this gateway's streams on it (protocol.py). A link that is closed, refuses
the token, or hears nothing for `stall_ms` is lost: its streams move to the least-loaded other worker at once
(stream.py replays what they kept) and the link is tried again every `retry_s`. A new stream goes to the healthy,
non-draining worker with the lowest load; when none is reachable or all are full, streams wait in arrival order
and take the first free place.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Gauge
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asr.engine import AsrEngine, StreamState
from asr.remote.protocol import (
    MAX_FRAME,
    STREAM_PATH,
    Close,
    Error,
    Finish,
    Finished,
    Hello,
    Load,
    Open,
    Opened,
    Refused,
    SegmentOut,
    pack_audio,
    parse_worker,
)
from asr.remote.stream import RemoteStream
from asr.settings import ServiceSettings
from config.paths import resolve

log = logging.getLogger(__name__)

LATE_TIMER_S = 0.1  # a stall timer this late says our loop, not the worker, was held up


class WorkerLink:
    """This gateway's connection to one worker; reconnects until the pool closes."""

    def __init__(self, pool: RemoteEngine, url: str) -> None:
        self.pool = pool
        self.url = url
        self.up = False
        self.load: Load | None = None
        self.opened_since_load = 0
        self.channels: dict[int, RemoteStream] = {}
        self.last_error = ""
        self._numbers = itertools.count(1)
        self._out: asyncio.Queue[str | bytes] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.up and self.load is not None and not self.load.draining

    @property
    def estimated_load(self) -> float:
        """Share of the worker's capacity in use, counting what we opened since it last told us."""
        assert self.load is not None
        return (self.load.streams + self.opened_since_load) / max(self.load.capacity, 1)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"asr-link {self.url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---- sending (never blocks: one writer task per connection) ----
    def _send(self, item: str | bytes) -> None:
        if self._out is not None:
            self._out.put_nowait(item)

    def open_channel(self, stream: RemoteStream) -> int:
        number = next(self._numbers)
        self.channels[number] = stream
        self.opened_since_load += 1
        message = Open(
            channel=number,
            stream_id=stream.stream_id,
            speaker=stream.speaker,
            sample_rate=stream.sample_rate,
            phrases=list(stream.phrases),
        )
        self._send(message.model_dump_json())
        return number

    def send_audio(self, channel: int, pcm: bytes) -> None:
        self._send(pack_audio(channel, pcm))

    def finish_channel(self, channel: int) -> None:
        self._send(Finish(channel=channel).model_dump_json())

    def close_channel(self, channel: int) -> None:
        if self.channels.pop(channel, None) is not None:
            self._send(Close(channel=channel).model_dump_json())

    # ---- the connection ----
    async def _run(self) -> None:
        settings = self.pool.settings
        token = settings.token.get_secret_value() if settings.token is not None else ""
        while True:
            ws: ClientConnection | None = None
            try:
                ws = await connect(
                    self.url + STREAM_PATH,
                    ssl=self.pool.tls if self.url.startswith("wss://") else None,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=max(settings.stall_ms / 1000, 2.0),
                    max_size=MAX_FRAME,
                    compression=None,
                    ping_interval=None,
                    proxy=None,
                )
                await self._serve(ws)
            except asyncio.CancelledError:
                self._down("the gateway is stopping")
                raise
            except InvalidStatus as exc:
                self._down(f"refused: HTTP {exc.response.status_code}")
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                self._down(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            except Exception as exc:  # a worker that speaks nonsense is a lost worker, not a dead gateway
                log.exception("asr worker %s: protocol failure", self.url)
                self._down(repr(exc))
            finally:
                if ws is not None:  # no closing handshake: a lost worker would not answer it
                    ws.transport.abort()
            await asyncio.sleep(settings.retry_s)

    async def _serve(self, ws: ClientConnection) -> None:
        stall = self.pool.settings.stall_ms / 1000
        out: asyncio.Queue[str | bytes] = asyncio.Queue()
        writer = asyncio.create_task(self._write(ws, out))
        try:
            while True:
                frame = await self._next_frame(ws, stall)
                message = parse_worker(frame)
                if isinstance(message, Hello):
                    self._out = out
                    self.up = True
                    self.last_error = ""
                    log.info("asr worker %s up (%s, %d streams)", self.url, message.engine, message.capacity)
                elif isinstance(message, Load):
                    self.load, self.opened_since_load = message, 0
                    self.pool.room_changed()
                else:
                    self._dispatch(message)
                if writer.done():
                    writer.result()  # the writer failed: the connection is gone
        finally:
            writer.cancel()

    async def _next_frame(self, ws: ClientConnection, stall: float) -> str | bytes:
        """The worker's next frame, or TimeoutError when it has said nothing for `stall` seconds. If the timer
        went off late, this process's own loop was held up (a garbage-collector pass, a slow callback): what the
        worker sent meanwhile is buffered (a cancelled recv loses nothing), so look once more before calling it
        lost. Otherwise a pause of the gateway would move every stream of a healthy worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stall
        try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel that stops the link
            async with asyncio.timeout_at(deadline):
                return await ws.recv()
        except TimeoutError:
            late = loop.time() - deadline >= LATE_TIMER_S
        if late:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LATE_TIMER_S):
                    return await ws.recv()
        raise TimeoutError(f"silent for {self.pool.settings.stall_ms} ms")

    @staticmethod
    async def _write(ws: ClientConnection, out: asyncio.Queue[str | bytes]) -> None:
        while True:
            await ws.send(await out.get())

    def _dispatch(self, message: Opened | Refused | SegmentOut | Finished | Error) -> None:
        if isinstance(message, Error):
            log.warning("asr worker %s: %s (%s, channel %s)", self.url, message.message, message.code, message.channel)
            return
        stream = self.channels.get(message.channel)
        if stream is None:
            return  # closed on our side meanwhile
        if isinstance(message, SegmentOut):
            stream.received(message)
        elif isinstance(message, Opened):
            stream.acknowledged()
        elif isinstance(message, Finished):
            del self.channels[message.channel]
            stream.finished()
        else:
            del self.channels[message.channel]
            self.pool.refused(stream, self, message.reason)

    def _down(self, why: str) -> None:
        was_up = self.up
        self.up, self.load, self._out = False, None, None
        if self.pool.closed:
            log.info("asr worker %s: disconnected (%s)", self.url, why)
        elif why != self.last_error or was_up:
            log.warning("asr worker %s lost: %s", self.url, why)
        self.last_error = why
        streams, self.channels = list(self.channels.values()), {}
        for stream in streams:
            stream.lost_worker(f"ASR worker {self.url} lost ({why})")
        for stream in streams:
            self.pool.attach(stream, exclude=frozenset({self}))


class RemoteEngine(AsrEngine):
    """Streams on ASR workers (asr.service.workers): least-loaded placement, failover, waiting when none has room."""

    name = "remote"

    def __init__(self, settings: ServiceSettings) -> None:
        if not settings.workers:
            raise ValueError("asr.service.workers lists no worker")
        if settings.token is None:
            raise ValueError("ASR workers need a token: set HOTLINE_ASR__SERVICE__TOKEN (asr.service.token)")
        self.settings = settings
        self.replay_s = settings.replay_s
        ca = resolve(settings.tls_ca_file) if settings.tls_ca_file is not None else None
        self.tls = (
            ssl.create_default_context(cafile=ca) if any(u.startswith("wss://") for u in settings.workers) else None
        )
        self.links = [WorkerLink(self, url) for url in settings.workers]
        self._streams: set[RemoteStream] = set()
        self._waiting: list[RemoteStream] = []
        self._reachable = asyncio.Event()  # set once a worker has told its load
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def start(self, wait_s: float = 3.0) -> None:
        """Connect to every worker; returns once one is up (or after `wait_s`: streams wait for one)."""
        self._loop = asyncio.get_running_loop()
        for link in self.links:
            link.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reachable.wait(), wait_s)

    def open_stream(
        self, stream_id: str, speaker: str, phrases: Sequence[str] = (), *, sample_rate: int = 16000
    ) -> RemoteStream:
        if self.closed:
            raise RuntimeError("engine is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            for link in self.links:
                link.start()
        stream = RemoteStream(self, stream_id, speaker, phrases, sample_rate)
        self._streams.add(stream)
        self.attach(stream)
        return stream

    def attach(self, stream: RemoteStream, exclude: frozenset[WorkerLink] = frozenset()) -> None:
        """Open `stream` on the least-loaded usable worker, else let it wait (and say why)."""
        if stream.closed or stream in self._waiting:
            return
        candidates = [link for link in self.links if link.usable and link not in exclude and link.estimated_load < 1.0]
        if not candidates:
            reachable = [link for link in self.links if link.usable]
            state: StreamState = "queued" if reachable else "unavailable"
            why = "every ASR worker is full" if reachable else "no ASR worker is reachable"
            stream.waiting(state, why)
            self._waiting.append(stream)
            return
        link = min(candidates, key=lambda candidate: candidate.estimated_load)
        stream.attach(link, link.open_channel(stream))

    def refused(self, stream: RemoteStream, link: WorkerLink, reason: str) -> None:
        log.info("asr worker %s refused stream %s: %s", link.url, stream.stream_id, reason)
        stream.attachment = None
        if link.load is not None:  # it is full or draining whatever it said last
            link.load = link.load.model_copy(update={"streams": link.load.capacity, "draining": reason == "draining"})
        self.attach(stream, exclude=frozenset({link}))

    def room_changed(self) -> None:
        """A worker told its load: streams waiting take the free places, first come first served."""
        self._reachable.set()
        while self._waiting:
            if not any(link.usable and link.estimated_load < 1.0 for link in self.links):
                return
            stream = self._waiting.pop(0)
            self.attach(stream)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """The pool as the person on call sees it, in the gateway's /metrics."""
        Gauge("hotline_asr_workers", "ASR workers listed", registry=registry).set(len(self.links))
        Gauge("hotline_asr_workers_up", "ASR workers connected and not draining", registry=registry).set_function(
            lambda: sum(link.usable for link in self.links)
        )
        Gauge(
            "hotline_asr_streams_waiting", "Streams no worker has taken (transcription unavailable)", registry=registry
        ).set_function(lambda: len(self._waiting))
        Gauge("hotline_asr_streams", "Streams open on workers", registry=registry).set_function(
            lambda: len(self._streams)
        )

    def forget(self, stream: RemoteStream) -> None:
        self._streams.discard(stream)
        with contextlib.suppress(ValueError):
            self._waiting.remove(stream)

    def _close_streams(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        for stream in list(self._streams):
            stream.close()
        return True

    def close(self) -> None:
        """Close every stream and stop the links (from the loop's thread or any other)."""
        loop = self._loop
        if not self._close_streams() or loop is None or loop.is_closed():
            return

        async def _stop_all() -> None:
            await asyncio.gather(*(link.stop() for link in self.links))

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(_stop_all())
        elif loop.is_running():
            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(_stop_all(), loop).result(timeout=5)

    async def aclose(self) -> None:
        self._close_streams()
        await asyncio.gather(*(link.stop() for link in self.links))
