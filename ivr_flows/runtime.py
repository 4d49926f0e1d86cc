"""Steps one call through a published flow, driving it only through `CallPort`.

The runner holds the caller's current language (prompts resolve in it, with the flow's fallback chain) and the IVR
path (steps visited, keys pressed) that the call events and the routing request carry.

Only validated flows are published, so every target exists; the runner still never trusts that blindly: a missing
step or an exhausted step budget ends the call politely instead of raising into the telephony layer. A prompt file
deleted after publishing is skipped (and logged) rather than failing the call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import structlog

from ivr_flows.catalog import PromptCatalog, PromptSequences, media_uri
from ivr_flows.model import (
    WEEKDAYS,
    BranchStep,
    Flow,
    GotoStep,
    HangupStep,
    InterpreterStep,
    MenuStep,
    PlayStep,
    RouteStep,
    SetLanguageStep,
    Step,
    TransferStep,
    split_prompt,
)
from ivr_flows.port import CallPort, RouteOutcome, RouteRequest

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
EndReason = Literal[
    "connected",  # talked to an operator; the conversation is over
    "callback_recorded",
    "no_operators",
    "failed",
    "caller_hangup",  # the caller left while routing
    "transferred",
    "hangup",  # a hangup step, or a follow-up the flow left out
    "step_limit",
]

MAX_STEPS = 500  # far more than any caller walks; guards against a flow bug only


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PathEntry:
    """One step of the IVR path. `digits` is the accepted menu entry; `failures` the rejected ones, in order
    ("" for a timeout)."""

    step: str
    digits: str | None = None
    failures: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = self.step
        if self.failures:
            text += "[" + ",".join(f or "timeout" for f in self.failures) + "]"
        if self.digits is not None:
            text += f":{self.digits}"
        return text


@dataclass(frozen=True)
class RunResult:
    reason: EndReason
    last_step: str
    language: str
    path: tuple[PathEntry, ...]
    route: RouteOutcome | None = None


class _Announcer:
    """Queue announcements in the caller's language at the moment they are played."""

    def __init__(self, runner: FlowRunner) -> None:
        self._runner = runner

    def position(self, position: int, expected_wait_s: float) -> Sequence[str]:
        """`position` is 1 for the next caller to be served (voice.router), so 0 callers are ahead."""
        names = self._runner.flow.queue_prompts
        ahead = self._runner.say(names.position, max(0, position - 1))
        wait = self._runner.say(names.wait, max(1, math.ceil(expected_wait_s / 60)))
        return [*ahead, *wait]

    def callback_recorded(self) -> Sequence[str]:
        return self._runner.resolve([self._runner.flow.queue_prompts.callback])


class FlowRunner:
    def __init__(
        self,
        flow: Flow,
        prompts: PromptCatalog,
        clock: Clock = utc_now,
        *,
        sequences: PromptSequences | None = None,
        version: int | None = None,
        max_steps: int = MAX_STEPS,
    ) -> None:
        self.flow = flow
        self.version = version
        self.prompts = prompts
        self.sequences = sequences
        self.clock = clock
        self.language = flow.default_language
        self.max_steps = max_steps
        self.path: list[PathEntry] = []
        self.route_requests: list[RouteRequest] = []
        self.last_route: RouteOutcome | None = None  # kept for the result when a follow-up step ends the call
        self.result: RunResult | None = None
        self._zone = ZoneInfo(flow.timezone)
        self.log = log.bind(number=flow.number, version=version)

    @property
    def ivr_path(self) -> tuple[str, ...]:
        return tuple(str(entry) for entry in self.path)

    # ---- prompts ----

    def resolve(self, refs: Sequence[str]) -> list[str]:
        """Media URIs for prompt references in the current language (fallback chain); missing ones are skipped."""
        uris = []
        for ref in refs:
            name, fixed = split_prompt(ref)
            chain = [fixed] if fixed is not None else self.flow.prompt_chain(self.language)
            path = next((p for p in (self.prompts.path(name, lang) for lang in chain) if p is not None), None)
            if path is None:
                self.log.warning("ivr.prompt_missing", prompt=ref, language=self.language)
                continue
            uris.append(media_uri(path))
        return uris

    def say(self, sequence: str, n: int) -> list[str]:
        """A composite announcement with count `n`, wholly in the first language of the chain that can say it."""
        if self.sequences is None:
            return []
        for language in self.flow.prompt_chain(self.language):
            try:
                names = self.sequences.sequence(sequence, language, n)
            except KeyError:
                continue
            paths = [self.prompts.path(name, language) for name in names]
            if all(path is not None for path in paths):
                return [media_uri(path) for path in paths if path is not None]
        self.log.warning("ivr.announcement_missing", sequence=sequence, language=self.language, n=n)
        return []

    async def _play(self, port: CallPort, refs: Sequence[str], *, interruptible: bool) -> bool:
        uris = self.resolve(refs)
        if not uris:
            return False
        return await port.play(uris, interruptible=interruptible)

    # ---- running ----

    async def run(self, port: CallPort) -> RunResult:
        """Answer and walk the flow to its end. A caller hang-up surfaces as the port's own exception."""
        await port.answer()
        step_id = self.flow.start
        steps_taken = 0
        while True:
            steps_taken += 1
            step = self.flow.steps.get(step_id)
            if step is None or steps_taken > self.max_steps:
                reason: EndReason = "hangup" if step is None else "step_limit"
                self.log.error("ivr.flow_aborted", step=step_id, reason=reason)
                return await self._finish(port, reason, step_id, hang_up=True)
            nxt = await self._step(port, step_id, step)
            if isinstance(nxt, RunResult):
                self.result = nxt
                return nxt
            step_id = nxt

    async def _finish(
        self, port: CallPort, reason: EndReason, step_id: str, *, hang_up: bool, route: RouteOutcome | None = None
    ) -> RunResult:
        if hang_up:
            await port.hangup()
        self.result = RunResult(reason, step_id, self.language, tuple(self.path), route or self.last_route)
        self.log.info("ivr.finished", reason=reason, step=step_id, path=self.ivr_path)
        return self.result

    async def _step(self, port: CallPort, step_id: str, step: Step) -> str | RunResult:
        if isinstance(step, MenuStep):
            return await self._menu(port, step_id, step)
        self.path.append(PathEntry(step_id))
        if isinstance(step, PlayStep):
            await self._play(port, step.prompts, interruptible=step.interruptible)
            return step.next
        if isinstance(step, SetLanguageStep):
            self.language = step.language
            port.set_language(step.language)
            return step.next
        if isinstance(step, GotoStep):
            return step.next
        if isinstance(step, BranchStep):
            return self._branch(step)
        if isinstance(step, RouteStep | InterpreterStep):
            return await self._route(port, step_id, step)
        if isinstance(step, TransferStep):
            if await port.transfer(step.target):
                return await self._finish(port, "transferred", step_id, hang_up=False)
            if step.on_failure is not None:
                return step.on_failure
            return await self._finish(port, "hangup", step_id, hang_up=True)
        assert isinstance(step, HangupStep)
        await self._play(port, step.prompts, interruptible=False)
        return await self._finish(port, "hangup", step_id, hang_up=True)

    async def _menu(self, port: CallPort, step_id: str, step: MenuStep) -> str:
        failures: list[str] = []
        # Keys typed during an earlier interruptible prompt are kept: they are this menu's answer (type-ahead).
        prompts: Sequence[str] = step.prompts
        while True:
            await self._play(port, prompts, interruptible=True)
            entry = await port.gather(
                step.max_digits,
                step.timeout_s,
                step.inter_digit_s,
                step.timeout_s + step.max_digits * step.inter_digit_s,
                step.terminator,
            )
            target = step.options.get(entry.digits)
            if target is not None:
                self.path.append(PathEntry(step_id, entry.digits, tuple(failures)))
                return target
            failures.append(entry.digits)
            if len(failures) > step.retries:
                self.path.append(PathEntry(step_id, None, tuple(failures)))
                self.log.info("ivr.menu_failed", step=step_id, failures=failures)
                return step.on_failure
            # Whatever else the caller typed belonged to the rejected entry; keys pressed during the
            # invalid/timeout prompt count for the retry.
            port.flush_digits()
            notice = step.timeout_prompt if not entry.digits else step.invalid_prompt
            prompts = [notice, *step.prompts] if notice else step.prompts

    def _branch(self, step: BranchStep) -> str:
        now = self.clock()
        local = now.replace(tzinfo=self._zone) if now.tzinfo is None else now.astimezone(self._zone)
        weekday = WEEKDAYS[local.weekday()]
        is_holiday = local.date() in self.flow.holidays
        for rule in step.rules:
            if rule.matches(weekday, local.time(), is_holiday):
                return rule.next
        return step.default

    async def _route(self, port: CallPort, step_id: str, step: RouteStep | InterpreterStep) -> str | RunResult:
        await self._play(port, step.prompts, interruptible=False)
        interpreter = step.language if isinstance(step, InterpreterStep) else None
        request = RouteRequest(
            queue=step.queue,
            skills=tuple(step.skills),
            language=interpreter or self.language,
            interpreter_language=interpreter,
            ivr_path=self.ivr_path,
            flow_version=self.version,
            max_wait_s=step.max_wait_s,
            ring_timeout_s=step.ring_timeout_s,
            announce_every_s=step.announce_every_s,
        )
        self.route_requests.append(request)
        outcome = await port.route(request, _Announcer(self))
        self.last_route = outcome
        self.log.info("ivr.routed", step=step_id, queue=step.queue, status=outcome.status)
        if outcome.status == "connected":
            return await self._finish(port, "connected", step_id, hang_up=True, route=outcome)
        if outcome.status == "caller_hangup":
            return await self._finish(port, "caller_hangup", step_id, hang_up=False, route=outcome)
        follow = step.on_callback if outcome.status == "callback_recorded" else step.on_no_operator
        if follow is not None:
            return follow
        return await self._finish(port, outcome.status, step_id, hang_up=True, route=outcome)
