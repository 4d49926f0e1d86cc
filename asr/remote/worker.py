"""The ASR worker (`hotline asr serve`): one engine (one model copy) serving the streams of every client.

HTTP on the same port: `GET /health` (no secret: status and load only; 503 while draining, so a balancer stops
sending), `GET /metrics` (Prometheus; bearer token), and the stream socket at `/v1/stream` (bearer token). On
SIGTERM the worker drains: it refuses new streams, tells its clients (`load.draining`), lets open streams go on
for `drain_timeout_s`, then closes; clients move what is left to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import socket
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from asr.engine import AsrEngine, AsrStream
from asr.remote.metrics import WorkerMetrics
from asr.remote.protocol import (
    AUDIO_AHEAD_S,
    MAX_FRAME,
    STREAM_PATH,
    Close,
    Finish,
    Finished,
    Hello,
    Load,
    Open,
    Opened,
    ProtocolError,
    Refused,
    RefusedReason,
    parse_client,
    segment_message,
    unpack_audio,
)
from asr.settings import ServiceSettings
from config.paths import resolve

log = logging.getLogger(__name__)


def _queue_depth(engine: AsrEngine) -> int:
    pool = getattr(engine, "pool", None)
    load = getattr(pool, "load", 0)
    return load if isinstance(load, int) else 0


@dataclass(eq=False)
class _Channel:
    stream: AsrStream
    sample_rate: int
    opened_at: float = field(default_factory=time.monotonic)
    samples: int = 0  # audio received
    pump: asyncio.Task[None] | None = None
    finishing: bool = False
    closed: bool = False
    flush: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Client:
    """One client connection: its channels, and one writer so that messages go out whole and in order."""

    worker: AsrWorker
    ws: ServerConnection
    channels: dict[int, _Channel] = field(default_factory=dict)
    out: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)

    def send(self, message: str) -> None:
        self.out.put_nowait(message)

    async def run(self) -> None:
        worker = self.worker
        self.send(Hello(worker=worker.name, engine=worker.engine.name, capacity=worker.capacity).model_dump_json())
        self.send(worker.load().model_dump_json())
        tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._heartbeat())]
        try:
            async for frame in self.ws:
                self._receive(frame)
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()
            for channel in list(self.channels.values()):
                self._drop(channel)
            self.channels.clear()

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.send(await self.out.get())

    async def _heartbeat(self) -> None:
        interval = self.worker.settings.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self.send(self.worker.load().model_dump_json())

    def _receive(self, frame: str | bytes) -> None:
        try:
            if isinstance(frame, bytes):
                number, pcm = unpack_audio(frame)
                channel = self.channels.get(number)
                if channel is None or channel.closed:
                    raise ProtocolError("unknown_channel", f"no open channel {number}", number)
                channel.samples += len(pcm) // 2
                ahead = channel.samples / channel.sample_rate - (time.monotonic() - channel.opened_at)
                if ahead > AUDIO_AHEAD_S:  # a client flooding the worker would queue decodes without bound
                    channel.samples -= len(pcm) // 2
                    raise ProtocolError(
                        "too_fast", f"channel {number} is {ahead:.0f} s ahead of real time: audio dropped", number
                    )
                channel.stream.push(pcm)
                return
            message = parse_client(frame)
            if isinstance(message, Open):
                self._open(message)
            elif isinstance(message, Finish):
                self._finish(message.channel)
            else:
                self._close(message)
        except ProtocolError as exc:
            self.worker.metrics.errors.labels(exc.code).inc()
            self.send(exc.message().model_dump_json())

    def _open(self, message: Open) -> None:
        worker = self.worker
        reason: RefusedReason | None = None
        if message.channel in self.channels:
            reason = "channel_in_use"
        elif worker.draining:
            reason = "draining"
        elif worker.streams >= worker.capacity:
            reason = "full"
        if reason is not None:
            worker.metrics.refused.labels(reason).inc()
            self.send(Refused(channel=message.channel, reason=reason).model_dump_json())
            return
        stream = worker.engine.open_stream(
            message.stream_id, message.speaker, message.phrases, sample_rate=message.sample_rate
        )
        channel = _Channel(stream, message.sample_rate)
        self.channels[message.channel] = channel
        worker.opened(+1)
        self.send(Opened(channel=message.channel).model_dump_json())
        channel.pump = asyncio.create_task(self._pump(message.channel, channel))

    async def _pump(self, number: int, channel: _Channel) -> None:
        kinds = self.worker.metrics.segments
        async for segment in channel.stream.segments():
            if channel.closed:
                break
            kinds.labels(segment.kind).inc()
            self.send(segment_message(number, segment).model_dump_json())
        if channel.finishing and not channel.closed:
            self.send(Finished(channel=number).model_dump_json())
            self._release(number, channel)

    def _finish(self, number: int) -> None:
        channel = self.channels.get(number)
        if channel is None or channel.closed:
            raise ProtocolError("unknown_channel", f"no open channel {number}", number)
        if channel.finishing:
            return
        channel.finishing = True
        channel.flush = asyncio.create_task(channel.stream.finish())

    def _close(self, message: Close) -> None:
        channel = self.channels.get(message.channel)
        if channel is None:
            raise ProtocolError("unknown_channel", f"no open channel {message.channel}", message.channel)
        self._release(message.channel, channel)

    def _release(self, number: int, channel: _Channel) -> None:
        if self.channels.get(number) is channel:
            del self.channels[number]
        self._drop(channel)

    def _drop(self, channel: _Channel) -> None:
        if channel.closed:
            return
        channel.closed = True
        channel.stream.close()
        self.worker.opened(-1)


class AsrWorker:
    def __init__(self, engine: AsrEngine, settings: ServiceSettings, name: str | None = None) -> None:
        if settings.token is None:
            raise ValueError("an ASR worker needs a token: set HOTLINE_ASR__SERVICE__TOKEN (asr.service.token)")
        self.engine = engine
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{settings.port}"
        self.capacity = settings.max_streams
        self.streams = 0
        self.draining = False
        self.metrics = WorkerMetrics()
        self.metrics.capacity.set(self.capacity)
        self._token = settings.token.get_secret_value().encode()
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        if hasattr(engine, "on_decode"):
            engine.on_decode = self.metrics.decoded
        if hasattr(engine, "silent_finals"):
            self.metrics.silent_finals.set_function(lambda: float(getattr(engine, "silent_finals", 0)))
        if hasattr(engine, "decoder"):
            decoder = engine.decoder
            self.metrics.uncovered_rereads.set_function(lambda: float(getattr(decoder, "uncovered_retries", 0)))

    # ---- state ----
    def opened(self, delta: int) -> None:
        self.streams += delta
        if delta > 0:
            self.metrics.opened.inc()
        self.metrics.streams.set(self.streams)
        if self.streams == 0:
            self._idle.set()
        else:
            self._idle.clear()

    def load(self) -> Load:
        queue = _queue_depth(self.engine)
        self.metrics.queue.set(queue)
        return Load(streams=self.streams, capacity=self.capacity, queue=queue, draining=self.draining)

    # ---- HTTP ----
    def _authorised(self, headers: Headers) -> bool:
        given = headers.get("Authorization", "")
        scheme, _, secret = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(secret.strip().encode(), self._token)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            load = self.load()
            body = {
                "status": "draining" if self.draining else "ok",
                "worker": self.name,
                **load.model_dump(exclude={"type"}),
            }
            status = HTTPStatus.SERVICE_UNAVAILABLE if self.draining else HTTPStatus.OK
            return _response(status, json.dumps(body) + "\n", "application/json")
        if path not in ("/metrics", STREAM_PATH):
            return _response(HTTPStatus.NOT_FOUND, "not found\n")
        if not self._authorised(request.headers):
            return _response(HTTPStatus.UNAUTHORIZED, "a bearer token is needed (asr.service.token)\n")
        if path == "/metrics":
            self.load()
            return _response(HTTPStatus.OK, self.metrics.render().decode(), CONTENT_TYPE_LATEST)
        if self.draining:
            return _response(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(self, ws)
        self._clients.add(client)
        self.metrics.connections.set(len(self._clients))
        try:
            await client.run()
        finally:
            self._clients.discard(client)
            self.metrics.connections.set(len(self._clients))

    # ---- life cycle ----
    def _tls(self) -> ssl.SSLContext | None:
        settings = self.settings
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(resolve(settings.tls_cert_file), resolve(settings.tls_key_file))
        return context

    @property
    def scheme(self) -> str:
        return "wss" if self.settings.tls_cert_file is not None else "ws"

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            max_size=MAX_FRAME,
            compression=None,  # PCM does not compress; deflate would cost CPU on every frame
            ping_interval=10,  # a client gone without a word (a cut network) is dropped with its streams,
            ping_timeout=10,  # so their places free up; clients see the worker through its load heartbeat
            ssl=self._tls(),
        )
        log.info("asr worker %s listening on %s:%d", self.name, self.settings.host, self.settings.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    async def drain(self) -> None:
        """Refuse new streams, let the open ones end (up to drain_timeout_s), then close every connection."""
        self.draining = True
        self.metrics.draining.set(1)
        for client in list(self._clients):
            client.send(self.load().model_dump_json())
        log.info("asr worker draining: %d streams open", self.streams)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.settings.drain_timeout_s)
        await self.stop()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_until_signal(self) -> None:
        """Run until SIGTERM (drain first) or SIGINT (stop now)."""
        if self._server is None:
            await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        drain = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, drain.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(drain.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if drain.is_set():
            await self.drain()
        else:
            await self.stop()


def _response(status: HTTPStatus, body: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    data = body.encode()
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return Response(status.value, status.phrase, headers, data)
