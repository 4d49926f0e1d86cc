"""Connecting a caller to an operator: queue with music and announcements, ring the longest-idle skilled
operator (skipping one who does not answer), bridge, bring in the interpreter centre as a third leg, and record
a callback request when the wait grows too long."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from events.contract import (
    CallAnswered,
    CallEventModel,
    CallFields,
    CallOffered,
    CallTransferred,
    InterpreterFailed,
    InterpreterJoined,
    InterpreterLeft,
)
from ivr_flows.port import QueueAnnouncer, RouteOutcome, RouteRequest
from voice.callbacks import CallbackStore
from voice.leases import LocalLeases, OperatorLeases
from voice.legs import Leg, LegGone
from voice.operators import Operator
from voice.router import Router, Waiter
from voice.settings import ExternalDestination, InterpreterCentre, RoutingSettings
from voice.supervision import Supervision

log = structlog.get_logger(__name__)


class RoutedCall(Protocol):
    """What routing needs of a call (voice.session.CallSession is one): its ids, music, prompts, the legs it
    dials and bridges, the transcription of its parties, its log and its events."""

    @property
    def call_id(self) -> str: ...

    @property
    def channel_id(self) -> str: ...

    @property
    def caller_number(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger: ...

    def about(self) -> CallFields: ...

    def publish(self, event: CallEventModel) -> None: ...

    async def start_moh(self) -> None: ...

    async def stop_moh(self) -> None: ...

    async def play(self, media: str | Sequence[str], *, interruptible: bool = False) -> bool: ...

    async def dial(
        self, endpoint: str, role: str, timeout_s: float, on_ringing: Callable[[], None] | None = None
    ) -> Leg | None: ...

    async def drop_leg(self, leg: Leg) -> None: ...

    async def bridge_with(self, *legs: Leg) -> str: ...

    async def record_conversation(self, bridge_id: str) -> None: ...

    async def transcribe(self, *parties: tuple[str, str]) -> None: ...

    async def stop_transcribing(self, channel_id: str) -> None: ...


class TargetRefused(ValueError):
    """A transfer target or interpreter language that names nothing the gateway may dial."""


@dataclass
class _Talk:
    """What one connected conversation holds, so the desktop can act on it mid-call."""

    operator: Operator
    operator_leg: Leg
    interpreter_leg: Leg | None = None
    events: list[str] = field(default_factory=list)
    watchers: set[asyncio.Task[None]] = field(default_factory=set)


class RoutingServices:
    def __init__(
        self,
        router: Router,
        callbacks: CallbackStore,
        settings: RoutingSettings,
        centre: InterpreterCentre,
        destinations: Mapping[str, ExternalDestination] | None = None,
        supervisor_phones: Mapping[str, str] | None = None,
        leases: OperatorLeases | None = None,
    ) -> None:
        self.router = router
        self.callbacks = callbacks
        self.settings = settings
        self.centre = centre
        self.destinations = dict(destinations or {})
        self._talks: dict[str, _Talk] = {}  # call id -> conversation in progress
        self.leases: OperatorLeases = leases or LocalLeases()  # operators shared with other nodes
        self.supervision = Supervision(supervisor_phones or {}, settings.transfer_ring_timeout_s, self._operator_now)

    # ---- queue and connect ----

    async def route(self, session: RoutedCall, request: RouteRequest, announcer: QueueAnnouncer) -> RouteOutcome:
        started = time.monotonic()
        events: list[str] = []
        if self.router.pool.configured(request.skills) == 0:
            # Nobody could ever take it: the flow decides (the shipped one adds the interpreter centre instead).
            log.warning("route.no_operators", call_id=session.call_id, skills=request.skills)
            return RouteOutcome("no_operators")
        waiter = self.router.enqueue(session.call_id, request.queue, request.skills)
        session.log.info("route.queued", queue=request.queue, position=self.router.position(waiter))
        operator: Operator | None = None
        leg: Leg | None = None
        try:
            await session.start_moh()
            while leg is None:
                operator = await self._wait_for_operator(session, waiter, request, announcer, started)
                if operator is None:
                    await session.stop_moh()
                    await self._record_callback(session, request, announcer, time.monotonic() - started)
                    return RouteOutcome("callback_recorded", waited_s=time.monotonic() - started, events=tuple(events))
                if not await self.leases.take(operator.id, session.call_id):  # another node's caller has them
                    self.router.taken_elsewhere(waiter, operator)
                    operator = None
                    continue
                session.log.info("route.ringing", operator=operator.id)
                offered = functools.partial(
                    session.publish,
                    CallOffered(
                        call_id=session.call_id,
                        caller_number=session.caller_number,
                        language=request.language,
                        operator_id=operator.id,
                        queue=request.queue,
                        ivr_path=list(request.ivr_path),
                        flow_version=request.flow_version,
                        interpreter_language=request.interpreter_language,
                    ),
                )
                leg = await session.dial(operator.endpoint, "operator", request.ring_timeout_s, on_ringing=offered)
                if leg is None:
                    events.append(f"operator.no_answer:{operator.id}")
                    await self.router.rang_out(waiter, operator)
                    operator = None
        except BaseException:
            if operator is not None and leg is None:
                await self.router.rang_out(waiter, operator)  # give the reserved operator back
            raise
        finally:
            await self.router.leave(waiter)
        assert operator is not None
        return await self._talk(session, request, operator, leg, started, events)

    async def _wait_for_operator(
        self,
        session: RoutedCall,
        waiter: Waiter,
        request: RouteRequest,
        announcer: QueueAnnouncer,
        started: float,
    ) -> Operator | None:
        """The reserved operator, or None once the caller has waited `max_wait_s`. Announces position meanwhile."""
        acquiring = asyncio.ensure_future(self.router.acquire(waiter))
        handed_over = False
        try:
            while True:
                left = request.max_wait_s - (time.monotonic() - started)
                if left <= 0:
                    return None
                await asyncio.wait({acquiring}, timeout=min(request.announce_every_s, left))
                if acquiring.done():
                    handed_over = True
                    return acquiring.result()
                if time.monotonic() - started >= request.max_wait_s:
                    return None
                media = announcer.position(self.router.position(waiter), self.router.expected_wait_s(waiter))
                await session.stop_moh()
                await session.play(media)
                await session.start_moh()
        finally:
            if not acquiring.done():
                acquiring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquiring
            elif not handed_over and not acquiring.cancelled() and acquiring.exception() is None:
                # Reserved just as the caller ran out of time or left: give the operator back.
                await self.router.rang_out(waiter, acquiring.result())

    async def _talk(
        self,
        session: RoutedCall,
        request: RouteRequest,
        operator: Operator,
        leg: Leg,
        started: float,
        events: list[str],
    ) -> RouteOutcome:
        pool = self.router.pool
        pool.talking(operator)
        talk = _Talk(operator, leg, events=events)
        self._talks[session.call_id] = talk
        talk_started = time.monotonic()
        waited = talk_started - started
        session.log.info("route.connected", operator=operator.id, waited_s=round(waited, 3))
        session.publish(
            CallAnswered(
                call_id=session.call_id,
                caller_number=session.caller_number,
                language=request.language,
                operator_id=operator.id,
                queue=request.queue,
                ivr_path=list(request.ivr_path),
                flow_version=request.flow_version,
                interpreter_language=request.interpreter_language,
                waited_s=round(waited, 3),
            )
        )
        try:
            await session.stop_moh()
            interpreter_joined = False
            try:
                bridge_id = await session.bridge_with(leg)
                await session.record_conversation(bridge_id)
                await session.transcribe(("caller", session.channel_id), ("operator", leg.channel_id))
                if request.interpreter_language:
                    try:
                        interpreter_joined = await self.add_interpreter(session, request.interpreter_language)
                    except TargetRefused as exc:  # the flow asked for a language the centre does not take
                        session.log.warning("interpreter.refused", error=str(exc))
                # Until the operator hangs up (a caller's hang-up cancels this task instead). A transfer swaps
                # the operator's leg: then keep going with the new one.
                while True:
                    current = talk.operator_leg
                    await current.wait_ended()
                    if talk.operator_leg is current:
                        break
            except LegGone:
                pass  # the operator hung up as soon as they answered
            events.append("operator.hangup")
            return RouteOutcome(
                "connected", talk.operator.id, waited, interpreter_joined=interpreter_joined, events=tuple(events)
            )
        finally:
            self._talks.pop(session.call_id, None)
            for watcher in talk.watchers:
                watcher.cancel()
            self.router.record_handle_time(time.monotonic() - talk_started)
            await pool.call_finished(talk.operator, self.settings.wrap_up_s)

    async def _record_callback(
        self, session: RoutedCall, request: RouteRequest, announcer: QueueAnnouncer, waited_s: float
    ) -> None:
        await self.callbacks.record(session.call_id, session.caller_number, session.language, request.queue, waited_s)
        session.log.info("route.callback_recorded", queue=request.queue, waited_s=round(waited_s, 1))
        await session.play(announcer.callback_recorded())

    # ---- interpreter centre (also called by the desktop mid-call) ----

    async def add_interpreter(self, session: RoutedCall, language: str) -> bool:
        """Dial the centre's extension for `language` into the call's bridge. Failure leaves the call as it was."""
        talk = self._talks.get(session.call_id)
        if talk is None:
            raise LookupError(f"call {session.call_id} is not talking to an operator")
        if talk.interpreter_leg is not None and talk.interpreter_leg.up:
            return True
        extension = self.centre.extension_for(language)
        if extension is None:
            talk.events.append(f"interpreter.no_extension:{language}")
            raise TargetRefused(f"the interpreter centre has no extension for {language!r} and no 'other'")
        endpoint = f"PJSIP/{extension}@{self.centre.endpoint_id}"
        leg = await session.dial(endpoint, "interpreter", self.centre.ring_timeout_s)
        if leg is None:
            talk.events.append("interpreter.failed")
            session.log.warning("interpreter.failed", language=language, endpoint=endpoint)
            session.publish(
                InterpreterFailed(**session.about(), operator_id=talk.operator.id, interpreter_language=language)
            )
            return False
        try:
            await session.bridge_with(leg)
        except LegGone:
            talk.events.append("interpreter.failed")
            return False
        talk.interpreter_leg = leg
        await session.transcribe(("interpreter", leg.channel_id))
        talk.events.append("interpreter.joined")
        session.log.info("interpreter.joined", language=language)
        session.publish(
            InterpreterJoined(**session.about(), operator_id=talk.operator.id, interpreter_language=language)
        )
        watcher = asyncio.ensure_future(self._watch_interpreter(session, talk, leg))
        talk.watchers.add(watcher)
        return True

    async def _watch_interpreter(self, session: RoutedCall, talk: _Talk, leg: Leg) -> None:
        cause = await leg.wait_ended()
        if talk.interpreter_leg is leg:
            talk.interpreter_leg = None
            talk.events.append("interpreter.left")
            session.log.info("interpreter.left", cause=cause)
            session.publish(InterpreterLeft(**session.about(), operator_id=talk.operator.id, cause=cause))
            await session.stop_transcribing(leg.channel_id)
            await session.drop_leg(leg)

    async def drop_interpreter(self, session: RoutedCall) -> bool:
        talk = self._talks.get(session.call_id)
        if talk is None or talk.interpreter_leg is None:
            return False
        leg, talk.interpreter_leg = talk.interpreter_leg, None
        talk.events.append("interpreter.dropped")
        await session.stop_transcribing(leg.channel_id)
        await session.drop_leg(leg)
        session.publish(InterpreterLeft(**session.about(), operator_id=talk.operator.id, cause="dropped by operator"))
        return True

    def interpreter_present(self, call_id: str) -> bool:
        talk = self._talks.get(call_id)
        return talk is not None and talk.interpreter_leg is not None and talk.interpreter_leg.up

    def _operator_now(self, call_id: str) -> tuple[str, Leg] | None:
        talk = self._talks.get(call_id)
        return (talk.operator.id, talk.operator_leg) if talk is not None else None

    def operator_of(self, call_id: str) -> str | None:
        talk = self._talks.get(call_id)
        return talk.operator.id if talk is not None else None

    # ---- transfer ----

    def _transfer_target(self, target: str) -> tuple[Operator | None, str]:
        """The operator (if any) and the endpoint `target` names: `queue:SKILL` (a free operator with that skill,
        None when nobody is free), `external:NAME` (the administrators' directory) or an operator id. Anything
        else raises TargetRefused: nothing typed at the desk reaches Asterisk as a dial string."""
        pool = self.router.pool
        if target.startswith("queue:"):
            skill = target.removeprefix("queue:")
            if pool.configured({skill}) == 0:
                raise TargetRefused(f"no operator has the skill {skill!r}")
            free = pool.free_for({skill})
            return (free[0], free[0].endpoint) if free else (None, "")
        if target.startswith("external:"):
            destination = self.destinations.get(target.removeprefix("external:"))
            if destination is None:
                raise TargetRefused(f"{target!r} is not in the external destinations directory")
            return None, destination.endpoint
        try:
            operator = pool.get(target)
        except KeyError:
            raise TargetRefused(
                f"{target!r} is not an operator id, queue:SKILL or external:NAME from the directory"
            ) from None
        return operator, operator.endpoint

    async def transfer_talk(self, session: RoutedCall, target: str) -> bool:
        """Mid-call transfer from the operator's desk (see `_transfer_target` for what `target` may be). The new
        party joins the bridge first; only then does the old operator leave. False: nobody free or no answer."""
        talk = self._talks.get(session.call_id)
        if talk is None:
            raise LookupError(f"call {session.call_id} is not talking to an operator")
        pool = self.router.pool
        operator, endpoint = self._transfer_target(target)
        if not endpoint:
            return False
        if operator is not None:
            if not await self.leases.take(operator.id, session.call_id):
                return False
            pool.reserve(operator)
        leg = await session.dial(endpoint, "operator", self.settings.transfer_ring_timeout_s)
        if leg is None:
            if operator is not None:
                await pool.not_answered(operator)
            return False
        try:
            await session.bridge_with(leg)
        except LegGone:
            if operator is not None:
                await pool.not_answered(operator)
            return False
        old_leg, old_operator = talk.operator_leg, talk.operator
        talk.operator_leg = leg
        if operator is not None:
            pool.talking(operator)
            talk.operator = operator
        talk.events.append(f"call.transferred:{target}")
        session.publish(
            CallTransferred(
                **session.about(), target=target, from_operator=old_operator.id, operator_id=talk.operator.id
            )
        )
        await session.transcribe(("operator", leg.channel_id))
        await session.stop_transcribing(old_leg.channel_id)
        await session.drop_leg(old_leg)
        if talk.operator is not old_operator:
            await pool.call_finished(old_operator, self.settings.wrap_up_s)
        return True

    async def transfer(self, session: RoutedCall, target: str) -> bool:
        """The flow's transfer step: connect the caller to `target` (same rule as the desk's) until it hangs up."""
        try:
            operator, endpoint = self._transfer_target(target)
        except TargetRefused as exc:
            session.log.warning("call.transfer_refused", target=target, error=str(exc))
            return False
        if not endpoint:
            return False
        if operator is not None:
            if not await self.leases.take(operator.id, session.call_id):
                return False
            self.router.pool.reserve(operator)
        leg = await session.dial(endpoint, "transfer", self.settings.transfer_ring_timeout_s)
        if leg is None:
            if operator is not None:
                await self.router.pool.not_answered(operator)
            return False
        session.publish(CallTransferred(**session.about(), target=target))
        try:
            if operator is not None:
                self.router.pool.talking(operator)
            with contextlib.suppress(LegGone):
                await session.bridge_with(leg)
                await leg.wait_ended()
        finally:
            if operator is not None:
                await self.router.pool.call_finished(operator, self.settings.wrap_up_s)
        return True
