"""`hotline serve`: Asterisk (embedded, system or external), the ARI gateway and the operations HTTP server,
started in that order and stopped in reverse on Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
from collections.abc import Iterator
from typing import cast

import sqlalchemy as sa
import structlog
import uvicorn
from fastapi import FastAPI
from nats.errors import Error as NatsError
from prometheus_client import CollectorRegistry, Gauge

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from agent_desktop_api.desktop import CallControl, Desktop, mount_desktop
from agent_desktop_api.ops import ops_router
from agent_desktop_api.page import LEAFLET_DIST, mount_page
from asr.engine import AsrEngine
from asr.engine import create_engine as create_asr_engine
from asr.remote.pool import RemoteEngine
from assist.address.gazetteer import GazetteerMissing
from assist.address.hints import PlaceHints
from assist.address.search import PlaceSearch
from assist.address.service import AddressResolver
from assist.address_assistant import AddressAssistant
from assist.alert_assistant import AlertAssistant
from assist.ticket.catalogue import Catalogue, CatalogueError
from assist.ticket.versions import CatalogueVersions
from assist.ticket_assistant import TicketAssistant
from config.database import create_engine
from config.database_health import DatabaseMonitor
from events.bus import EventBus
from events.nats_link import BusBridge, BusUnavailable, NatsLink, process_name
from events.replay import EventStream
from hotline import schema
from hotline.control import ControlServer, LocalControl, RemoteControl
from hotline.nodes import NodeBeacon, NodeWatch
from hotline.settings import PROJECT_ROOT, Settings
from ivr_flows.setup import (
    FlowComponents,
    build_flow_components,
    make_flow_handler,
    resolved_flows_settings,
)
from voice.ari import AriAuthError, AriClient
from voice.asterisk.instance import AsteriskInstance, AsteriskStartError
from voice.basic_flow import make_basic_flow
from voice.callbacks import CallbackStore
from voice.gateway import Gateway
from voice.leases import KvLeases
from voice.operators import Operator, OperatorPool
from voice.recording import CallRecorder
from voice.router import Router
from voice.routing import RoutingServices
from voice.rtp import RtpPortPool
from voice.session import CallHandler
from voice.shared_queue import KvQueue
from voice.taps import Transcriber

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_ASTERISK, EXIT_SETTINGS, EXIT_AUTH, EXIT_HTTP, EXIT_DATABASE, EXIT_BUS = 0, 1, 2, 3, 4, 5, 6

# What each `hotline serve --role` runs. The parts talk over the bus (events) and call control (hotline.control),
# in memory when they share a process, over NATS (`bus.url`) when they do not.
ROLES: dict[str, frozenset[str]] = {
    "all": frozenset({"voice", "assist", "desk"}),
    "voice": frozenset({"voice"}),  # Asterisk, ARI, IVR flows, routing, recognition: publishes the call's events
    "assist": frozenset({"assist"}),  # the map, ticket and alert assistants: read finals, publish cards, drafts, alerts
    "desk": frozenset({"desk"}),  # the operators' API, WebSocket and page, the event log, the admin flow API
}


class ServiceError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def operator_skills(settings: Settings) -> list[frozenset[str]]:
    return [frozenset(op.skills) for op in settings.telephony.operators]


def interpreted_languages(settings: Settings) -> list[str] | None:
    """Languages the centre has an extension for; None (all) when an 'other' extension catches the rest."""
    extensions = settings.telephony.interpreter_centre.extensions
    return None if "other" in extensions else list(extensions)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: `run_service` owns SIGINT/SIGTERM and stops things in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_routing(settings: Settings, engine: sa.Engine) -> RoutingServices:
    """Operators from settings (all available until the desktop drives presence), queues, callback storage."""
    pool = OperatorPool(Operator(op.id, frozenset(op.skills), f"PJSIP/{op.id}") for op in settings.telephony.operators)
    callbacks = CallbackStore(engine)
    return RoutingServices(
        Router(pool, settings.routing.average_handle_s),
        callbacks,
        settings.routing,
        settings.telephony.interpreter_centre,
        settings.telephony.external_destinations,
        {sup.id: f"PJSIP/{sup.id}" for sup in settings.telephony.supervisors},
    )


class GatewayService:
    def __init__(self, settings: Settings, handler: CallHandler | None = None, *, role: str = "all") -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.settings = settings
        self.handler = handler
        self.role = role
        self.parts = ROLES[role]
        self.engine = create_engine(settings.database)
        self.database = DatabaseMonitor(self.engine)
        self.flows: FlowComponents | None = None
        self.transcriber: Transcriber | None = None
        self.recorder: CallRecorder | None = None
        self.desktop: Desktop | None = None
        self.asr_engine: AsrEngine | None = None
        self.speaker_engines: dict[str, AsrEngine] = {}
        self.asterisk: AsteriskInstance | None = None
        self.bus = EventBus()  # calls publish here; the assistants and the desk read it
        self.link: NatsLink | None = None  # the bus across processes, when bus.url is set
        self.event_stream: EventStream | None = None  # the bus's kept events, read by the desk's event log
        self.bridge: BusBridge | None = None
        self.control_server: ControlServer | None = None
        self.addresses: AddressResolver | None = None
        self.catalogue: Catalogue | None = None
        self.catalogue_versions: CatalogueVersions | None = None
        self.assistant: AddressAssistant | None = None
        self.ticket_assistant: TicketAssistant | None = None
        self.alert_assistant: AlertAssistant | None = None
        self.place_search: PlaceSearch | None = None
        self.client: AriClient | None = None
        self.gateway: Gateway | None = None
        self.control: CallControl | None = None  # what the desk asks of the calls
        self.beacon: NodeBeacon | None = None  # a voice process on the bus: alive, and its calls
        self.node_watch: NodeWatch | None = None  # a desk process: ends the calls of a node that went silent
        self.leases: KvLeases | None = None  # a cluster's node: operators reserved across nodes
        self.shared_line: KvQueue | None = None  # a cluster's node: the callers' line across nodes
        self.metrics_registry = CollectorRegistry()  # the gateway's own when this process has one
        self._tasks: list[asyncio.Task[None]] = []
        self._http: uvicorn.Server | None = None
        self.failed = asyncio.Event()
        self.failure: ServiceError | None = None

    async def start(self) -> None:
        s, parts = self.settings, self.parts
        if self.role != "all" and s.bus.url is None:
            raise ServiceError(f"--role {self.role} needs the bus: set bus.url and bus.token", EXIT_SETTINGS)
        if parts & {"voice", "desk"}:
            try:  # the schema first: every part below reads and writes it
                await asyncio.to_thread(schema.upgrade, self.engine)
            except sa.exc.SQLAlchemyError as exc:
                raise ServiceError(f"cannot bring the database up to date: {exc}", EXIT_DATABASE) from exc
        if s.ticket.enabled and parts & {"assist", "desk"}:  # a broken catalogue stops the start before any call
            self.catalogue_versions = CatalogueVersions(self.engine, s.resolve(s.ticket.catalogue_file))
            try:
                self.catalogue, _ = await asyncio.to_thread(self.catalogue_versions.active)
            except CatalogueError as exc:
                raise ServiceError(f"invalid ticket catalogue: {exc}", EXIT_SETTINGS) from exc
            self._tasks.append(asyncio.create_task(self._follow_catalogue(), name="catalogue"))
        if parts & {"voice", "desk"}:
            await asyncio.to_thread(self.database.start)
        if s.bus.url is not None:
            await self._connect_bus()
        if self._needs_addresses():
            await self._load_addresses()
        if "assist" in parts:
            self._start_assistants()
        if "voice" in parts:
            await self._start_voice()
        elif "desk" in parts:
            assert self.link is not None
            self.control = RemoteControl(
                self.link.nc, self.link.subject("control"), s.bus.request_timeout_s, self._voice_nodes
            )
        if self.link is not None and "voice" in parts and self.gateway is not None:
            gateway = self.gateway
            self.beacon = NodeBeacon(self.link, lambda: [str(call["call_id"]) for call in gateway.calls()])
            await self.beacon.start()
        if self.link is not None and "desk" in parts and "voice" not in parts:
            # Several desk instances all watch; the one writing the event log ends a lost node's calls.
            self.node_watch = NodeWatch(self.link, self.bus, registry=self.metrics_registry, publishes=self._leads)
            writer = Gauge(
                "hotline_desk_log_writer",
                "1 while this desk API instance writes the event log the desk instances share",
                registry=self.metrics_registry,
            )
            writer.set_function(lambda: float(self.desktop is not None and self._leads()))
            await self.node_watch.start()
        if "desk" in parts and self.flows is None:  # the admin flow API; the voice side runs the flows
            self.flows = self._flow_components()
        await self._start_http()
        # What is loaded by now (gazetteer, indexes, flows) lives as long as the process: keep it out of the
        # collector's full passes, which otherwise walk it all on the event loop (bench/gc_pause.py). The
        # start's own garbage goes first, or it would stay for good.
        gc.collect()
        gc.freeze()
        log.info("service.started", role=self.role, http=f"http://{s.http.host}:{s.http.port}")

    async def _share_operators(self, routing: RoutingServices) -> None:
        """Operators reserved cluster-wide (voice.leases) and the callers' line shared (voice.shared_queue), in
        key-value buckets on the bus's NATS server."""
        if self.link is None:
            raise ServiceError("routing.shared_operators needs the bus (bus.url)", EXIT_SETTINGS)
        subject = self.settings.bus.subject
        leases = KvLeases(self.link.nc, f"{subject}_operators", self.link.name)
        line = KvQueue(self.link.nc, f"{subject}_waiting", self.link.name)
        try:
            await leases.start(routing.router.pool)
            await line.start(routing.router)
        except NatsError as exc:
            raise ServiceError(f"routing.shared_operators: the bus has no key-value store ({exc})", EXIT_BUS) from exc
        routing.leases = self.leases = leases
        self.shared_line = line

    def _leads(self) -> bool:
        return self.desktop is None or self.desktop.leading

    def _voice_nodes(self) -> int:
        """Voice processes known to be up (their beacons; 0 until the first one came)."""
        return len(self.node_watch.nodes) if self.node_watch is not None else 0

    def _needs_addresses(self) -> bool:
        """The gazetteer: the map assistant's, the desk's place search, and the recogniser's district names and
        decode hints."""
        s = self.settings
        if self.role == "all":
            return s.asr.enabled  # a gateway that does not transcribe has no spoken addresses to read
        voice_bias = "voice" in self.parts and s.asr.enabled and (s.asr.bias_place_names or s.asr.second_pass)
        return bool(self.parts & {"assist", "desk"}) or voice_bias

    async def _load_addresses(self) -> None:
        s = self.settings
        try:
            self.addresses = await asyncio.to_thread(AddressResolver.from_settings, s.address)
        except GazetteerMissing as exc:
            log.warning("address.gazetteer_missing", error=str(exc), hint="hotline-tools gazetteer build")
            return
        if self.parts & {"desk"}:
            gazetteer = self.addresses.extractor.gazetteer
            self.place_search = await asyncio.to_thread(PlaceSearch.from_gazetteer, gazetteer)

    def _start_assistants(self) -> None:
        if self.addresses is not None:
            self.assistant = AddressAssistant(self.bus, self.addresses)
            self.assistant.start()
        if self.catalogue is not None:
            self.ticket_assistant = TicketAssistant(self.bus, self.catalogue)
            self.ticket_assistant.start()
        if self.settings.alerts.enabled:
            self.alert_assistant = AlertAssistant(self.bus, self.settings.alerts.words)
            self.alert_assistant.start()

    async def _connect_bus(self) -> None:
        self.link = NatsLink(self.settings.bus, process_name(self.role))
        try:
            await self.link.connect()
        except BusUnavailable as exc:
            raise ServiceError(str(exc), EXIT_BUS) from exc
        if self.settings.bus.replay_s > 0:  # made by whoever comes first: it keeps the events from then on
            stream = EventStream(self.link, self.settings.bus.replay_s)
            try:
                await stream.ensure()
            except NatsError as exc:
                why = f"bus.replay_s: the bus keeps no events (a NATS server with JetStream is needed): {exc}"
                raise ServiceError(why, EXIT_BUS) from exc
            if "desk" in self.parts:
                self.event_stream = stream
        self.bridge = BusBridge(self.bus, self.link)
        await self.bridge.start()

    async def _start_voice(self) -> None:
        s = self.settings
        if s.asterisk.mode == "external":
            assert s.asterisk.ari_url and s.asterisk.ari_password
            url, user, password = s.asterisk.ari_url, s.asterisk.ari_username, s.asterisk.ari_password
            ari_password = password.get_secret_value()
        else:
            self.asterisk = AsteriskInstance(s)
            try:
                await self.asterisk.start()
            except AsteriskStartError as exc:
                raise ServiceError(f"Asterisk did not start: {exc}", EXIT_ASTERISK) from exc
            url, user, ari_password = self.asterisk.ari_url, self.asterisk.ari_username, self.asterisk.ari_password
            self._tasks.append(asyncio.create_task(self._watch_asterisk(), name="asterisk-watchdog"))
        self.client = AriClient(url, user, ari_password, s.ari.app, s.ari)
        self.routing = build_routing(s, self.engine)
        if s.routing.shared_operators:
            await self._share_operators(self.routing)
        self.transcriber = await self._build_transcriber()
        if s.recording.enabled:
            self.recorder = CallRecorder(
                self.client.rest, s.resolve(s.recording.dir), self.bus, s.recording.retention_days
            )
            self.recorder.start_pruning()
        if self.handler is None:
            self.handler = await self._default_handler()
        self.gateway = Gateway(
            self.client,
            self.handler,
            max_calls=s.telephony.max_concurrent_calls,
            prompts_dir=s.resolve(s.call.prompts_dir),
            services=self.routing,
            moh_class=s.routing.moh_class,
            transcriber=self.transcriber,
            bus=self.bus,
            recorder=self.recorder,
        )
        self.metrics_registry = self.gateway.metrics.registry
        if isinstance(self.asr_engine, RemoteEngine):  # the workers' state for the person on call
            self.asr_engine.register_metrics(self.metrics_registry)
        self.control = LocalControl(self.gateway)
        if self.link is not None:  # desks in other processes control the calls through us
            self.control_server = ControlServer(self.link.nc, self.link.subject("control"), self.control)
            await self.control_server.start()
        self._tasks.append(asyncio.create_task(self._run_gateway(), name="gateway"))
        log.info("voice.started", ari=url)

    def _flow_components(self) -> FlowComponents:
        s = self.settings
        return build_flow_components(
            self.engine,
            resolved_flows_settings(s.flows, s.resolve),
            operators=operator_skills(s),
            interpreter_languages=interpreted_languages(s),
        )

    async def _default_handler(self) -> CallHandler:
        """The published IVR flow of the dialled number (hot-reloaded), or the basic script if so configured."""
        s = self.settings
        if s.call.script == "basic":
            return make_basic_flow(s.call)
        self.flows = self._flow_components()
        await self.flows.start()
        entry = s.telephony.entry_number
        flow = self.flows
        return cast(
            CallHandler,
            make_flow_handler(
                flow.registry,
                flow.catalog,
                sequences=flow.catalog,
                number=lambda port: getattr(port, "dialed_number", "") or entry,
            ),
        )

    async def _build_transcriber(self) -> Transcriber | None:
        """The recogniser (its model loads in a worker thread: seconds); the gazetteer's district names bias it,
        and its streets guide a second decode of a line that names a district (asr.second_pass)."""
        s = self.settings
        if not s.asr.enabled:
            return None
        hints = PlaceHints(self.addresses.extractor) if self.addresses is not None else None
        self.asr_engine = await asyncio.to_thread(create_asr_engine, s.asr, PROJECT_ROOT, hints)
        await self.asr_engine.start()  # ASR workers (asr.service.workers): connect to them
        for speaker in s.asr.by_speaker:  # a party with a recogniser of its own (e.g. a smaller model)
            engine = await asyncio.to_thread(create_asr_engine, s.asr.for_speaker(speaker), PROJECT_ROOT, hints)
            await engine.start()
            self.speaker_engines[speaker] = engine
        phrases: list[str] = []
        if self.addresses is not None and s.asr.bias_place_names:
            phrases = [d.name for d in self.addresses.extractor.gazetteer.districts.values()]
        ports = RtpPortPool(s.asr.tap_port_start, s.asr.tap_port_start + s.asr.tap_port_count)
        log.info("asr.ready", engine=self.asr_engine.name, addresses=self.addresses is not None)
        assert self.client is not None
        return Transcriber(
            self.asr_engine, ports, self.client.rest, self.client.app, phrases=phrases, by_speaker=self.speaker_engines
        )

    def readiness(self) -> dict[str, bool]:
        """What /readyz reports, from state others keep current (no I/O: the probe must answer at once)."""
        checks: dict[str, bool] = {}
        if "voice" in self.parts:
            checks["ari"] = self.gateway is not None and self.gateway.ready
        if self.parts & {"voice", "desk"}:
            checks["database"] = self.database.ok
        if self.asterisk is not None:
            checks["asterisk"] = self.asterisk.running
        if self.desktop is not None:
            checks["event_store"] = self.desktop.log.storing
        if self.link is not None:
            checks["bus"] = self.link.connected
        return checks

    async def _run_gateway(self) -> None:
        assert self.gateway is not None
        try:
            await self.gateway.run()
        except AriAuthError as exc:
            self._fail(ServiceError(f"ARI refused our credentials: {exc}", EXIT_AUTH))

    async def _watch_asterisk(self) -> None:
        """Restart the embedded Asterisk if it dies; the event stream reconnects by itself."""
        assert self.asterisk is not None
        backoff = 1.0
        while True:
            await asyncio.sleep(1.0)
            if self.asterisk.running:
                backoff = 1.0
                continue
            log.error("asterisk.exited_unexpectedly", restart_in_s=backoff)
            await asyncio.sleep(backoff)
            try:
                await self.asterisk.start()
                log.info("asterisk.restarted", pid=self.asterisk.pid)
            except AsteriskStartError as exc:
                log.error("asterisk.restart_failed", error=str(exc))
                backoff = min(backoff * 2, 30.0)

    async def _start_http(self) -> None:
        s = self.settings.http
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it, small responses and WebSocket frames wait ~40 ms for
        # the peer's delayed ACK (measured: /healthz 44 ms → 1.5 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((s.host, s.port))
        except OSError as exc:
            sock.close()
            raise ServiceError(f"cannot listen on http {s.host}:{s.port}: {exc.strerror}", EXIT_HTTP) from exc
        if "desk" in self.parts:
            app = self._desk_app()
        else:
            app = FastAPI(title=f"hotline {self.role}", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(ops_router(self.metrics_registry, self.readiness))
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._http = _QuietServer(config)
        self._tasks.append(asyncio.create_task(self._http.serve(sockets=[sock]), name="http"))

    async def _follow_catalogue(self) -> None:
        """A catalogue published or rolled back (any process, the admin API) is in force here within
        `ticket.reload_s`: the ticket assistant drafts with it, the desk offers its categories."""
        versions = self.catalogue_versions
        assert versions is not None
        seen = await asyncio.to_thread(versions.latest_id)
        while True:
            await asyncio.sleep(self.settings.ticket.reload_s)
            try:
                latest = await asyncio.to_thread(versions.latest_id)
                if latest == seen:
                    continue
                catalogue, version = await asyncio.to_thread(versions.active)
            except (sa.exc.SQLAlchemyError, CatalogueError) as exc:  # keep the one in force; try again
                log.warning("catalogue.reload_failed", error=str(exc))
                continue
            seen = latest
            self.catalogue = catalogue
            if self.ticket_assistant is not None:
                self.ticket_assistant.catalogue = catalogue
            if self.desktop is not None:
                self.desktop.categories = {choice.code: choice for choice in catalogue.choices()}
            log.info("catalogue.reloaded", version=version.version if version else None, leaves=len(catalogue.leaves()))

    def _desk_app(self) -> FastAPI:
        app = create_app(
            auth_service=AuthService(self.engine, settings=self.settings.auth),
            flow_service=self.flows.service if self.flows is not None else None,
            catalogue=self.catalogue_versions,
        )
        catalogue = self.catalogue
        self.desktop = mount_desktop(
            app,
            self,
            categories=catalogue.choices() if catalogue is not None else (),
            place_search=self.place_search.search if self.place_search is not None else None,
            recordings=self.settings.resolve(self.settings.recording.dir) if self.settings.recording.enabled else None,
        )
        address = self.settings.address
        # the operator's page, /static and the districts GeoJSON
        mount_page(app, self.settings.resolve(LEAFLET_DIST), address.resolve(address.geojson_file))
        return app

    def _fail(self, error: ServiceError) -> None:
        log.error("service.failed", error=str(error))
        self.failure = error
        self.failed.set()

    async def stop(self) -> None:
        log.info("service.stopping")
        if self.control_server is not None:  # no more requests from other desks
            await self.control_server.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        if self.beacon is not None:  # its calls ended just now: leaving, not lost
            await self.beacon.stop()
        if self.shared_line is not None:  # our callers leave the others' line
            await self.shared_line.stop()
        if self.leases is not None:  # our operators are free for the other nodes
            await self.leases.stop()
        if self.node_watch is not None:
            await self.node_watch.stop()
        if self.recorder is not None:  # the recordings of the calls just hung up, before the bus goes
            await self.recorder.stop()
        if self.assistant is not None:  # the places in the last lines, before the desk stores its last events
            await self.assistant.stop()
        if self.ticket_assistant is not None:
            await self.ticket_assistant.stop()
        if self.alert_assistant is not None:
            await self.alert_assistant.stop()
        if self.bridge is not None:  # the last events (call.ended of the calls just hung up) to the others
            await self.bridge.stop()
        if self.desktop is not None:  # store the last events
            await self.desktop.stop()
        if self.link is not None:
            await self.link.close()
        if self._http is not None:
            self._http.should_exit = True
        for task in self._tasks:
            if task.get_name() != "http":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        if self.asterisk is not None:
            await self.asterisk.stop()
        if self.flows is not None:
            await self.flows.stop()
        for engine in [*self.speaker_engines.values(), *([self.asr_engine] if self.asr_engine else [])]:
            await asyncio.to_thread(engine.close)
        await asyncio.to_thread(self.database.stop)
        self.engine.dispose()
        log.info("service.stopped")


async def run_service(settings: Settings, role: str = "all") -> int:
    """Run until a signal or a fatal error; returns the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service = GatewayService(settings, role=role)
    try:
        await service.start()
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(service.failed.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    except ServiceError as exc:
        service._fail(exc)
    finally:
        with contextlib.suppress(Exception):
            await service.stop()
    if service.failure is not None:
        print(f"hotline serve: {service.failure}", flush=True, file=sys.stderr)
        return service.failure.exit_code
    return EXIT_OK
