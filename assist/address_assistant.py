"""The map assistant: reads the caller's (and the interpreter's) final transcript lines off the bus and publishes
the places they name as `address.candidates`.

It is only a bus subscriber: voice publishes transcripts and knows nothing of addresses, so this can run beside the
gateway or, once the bus spans machines, in a process of its own. Each call has its own worker, so a slow
geocoder answer for one call never holds up another call's card; within a call the lines are resolved in order,
the last few earlier lines as context (a street named after its district). A second, guided reading of a line
(`transcript.alternative`) is weighed against the line as heard, and may deepen the card (a street the first
reading only half caught). While the caller is still speaking, the latest partial line is read too, so the card
shows a place before the line ends (only when it changes the card; a partial's place counts a little less, and
the final firms it up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from events.address import AddressCandidates
from events.bus import BusReader, CallEvent, EventBus
from events.contract import (
    AddressCandidatesEvent,
    CallEnded,
    TranscriptAlternative,
    TranscriptFinal,
    TranscriptPartial,
)

log = structlog.get_logger(__name__)

ADDRESS_SPEAKERS = frozenset({"caller", "interpreter"})  # the interpreter speaks Mandarin for a foreign caller
CONTEXT_LINES = 3
STOP_TIMEOUT_S = 5.0  # lines still being resolved when the gateway stops


class AddressFinder(Protocol):
    """assist.address.service.AddressResolver satisfies this."""

    async def resolve(
        self, text: str, segment_id: str, *, partial: str | None = None, context: Sequence[str] = ()
    ) -> AddressCandidates: ...

    async def resolve_alternative(
        self, heard: str, alternative: str, segment_id: str, *, context: Sequence[str] = (), suggested: bool = False
    ) -> AddressCandidates | None: ...

    def glimpse(self, partial: str, segment_id: str, *, context: Sequence[str] = ()) -> AddressCandidates:
        """The places in a line still being spoken (the gazetteer only: quick, no network)."""
        ...


Line = TranscriptFinal | TranscriptAlternative | TranscriptPartial


@dataclass(eq=False)
class _CallWorker:
    queue: asyncio.Queue[Line | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    latest_partial: TranscriptPartial | None = None  # older partials still queued are skipped
    card: str | None = None  # the place the card shows now (adcode), so a partial that repeats it is not sent
    card_partial: str | None = None  # the segment whose partial line put it there, until that line's final
    settled: tuple[Line, AddressCandidates] | None = None  # the last card a whole line gave


class AddressAssistant:
    def __init__(self, bus: EventBus, finder: AddressFinder, *, speakers: frozenset[str] = ADDRESS_SPEAKERS) -> None:
        self.bus = bus
        self.finder = finder
        self.speakers = speakers
        self.resolved = 0
        self._calls: dict[str, _CallWorker] = {}
        self._reader = BusReader(bus, self.take, "address-assistant")

    def start(self) -> None:
        """Subscribe now (so no line published from here on is missed) and read on the running loop."""
        self._reader.start()

    async def stop(self) -> None:
        """Stop reading; lines already taken are resolved (for a few seconds at most), then the workers end."""
        await self._reader.stop()
        workers = list(self._calls.values())
        for worker in workers:
            worker.queue.put_nowait(None)
        tasks = [w.task for w in workers if w.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def take(self, event: CallEvent) -> None:
        """Route one bus event: a final worth reading goes to its call's worker; `call.ended` ends the worker
        once the lines before it are done."""
        body = event.body
        if isinstance(body, TranscriptFinal | TranscriptAlternative | TranscriptPartial):
            if body.speaker in self.speakers and body.text.strip():
                worker = self._worker(body.call_id)
                if isinstance(body, TranscriptPartial):
                    worker.latest_partial = body
                worker.queue.put_nowait(body)
        elif isinstance(body, CallEnded):
            ending = self._calls.get(body.call_id)
            if ending is not None:
                ending.queue.put_nowait(None)

    def _worker(self, call_id: str) -> _CallWorker:
        worker = self._calls.get(call_id)
        if worker is None:
            worker = self._calls[call_id] = _CallWorker()
            worker.task = asyncio.create_task(self._serve(call_id, worker), name=f"address-{call_id}")
        return worker

    async def _serve(self, call_id: str, worker: _CallWorker) -> None:
        # The last few finals, the context of the next line: a second reading that deepened the card takes its
        # line's place, so a later line read with it keeps the deeper place.
        lines: dict[str, str] = {}
        # The last few finals (a second reading may come after the next final) and the context each had.
        heard: dict[str, tuple[str, list[str]]] = {}
        # How sure the card a line's second reading gave was: a line may have two (a guided decode, a line put
        # right and scored), and a later, less sure one does not replace the first.
        reread: dict[str, float] = {}
        try:
            while (line := await worker.queue.get()) is not None:
                context = list(lines.values())
                try:
                    if isinstance(line, TranscriptPartial):
                        if line is worker.latest_partial:
                            await self._glimpse(worker, line, context)
                        continue
                    if isinstance(line, TranscriptAlternative):
                        first = heard.get(line.segment_id)
                        if first is None:
                            continue
                        surer = await self._reconsider(worker, line, *first, beaten=reread.get(line.segment_id, 0.0))
                        if surer is not None:
                            lines[line.segment_id] = line.text
                            reread[line.segment_id] = surer
                        continue
                    worker.latest_partial = None  # the line is over: its partials are stale
                    heard[line.segment_id] = (line.text, context)
                    if len(heard) > CONTEXT_LINES:
                        oldest = next(iter(heard))
                        del heard[oldest]
                        reread.pop(oldest, None)
                    await self._resolve(worker, line, context)
                except Exception:  # one bad line must not end the call's assistant
                    log.exception("address.resolve_failed", call_id=call_id, segment=line.segment_id)
                if isinstance(line, TranscriptFinal):
                    lines[line.segment_id] = line.text
                    if len(lines) > CONTEXT_LINES:  # as `heard`: a second reading of an older line is not taken
                        del lines[next(iter(lines))]
        finally:
            if self._calls.get(call_id) is worker:
                del self._calls[call_id]

    async def _resolve(self, worker: _CallWorker, line: TranscriptFinal, context: Sequence[str]) -> None:
        found = await self.finder.resolve(line.text, line.segment_id, context=context)
        self.resolved += 1
        if found.candidates:
            self._send(worker, line, found)
        elif worker.card_partial == line.segment_id:
            # No place in the whole line after all: the card its partial showed goes, and the last card an earlier
            # line gave (if any) comes back.
            self._send(worker, *(worker.settled or (line, found)))

    async def _glimpse(self, worker: _CallWorker, line: TranscriptPartial, context: Sequence[str]) -> None:
        """A place in the line still being spoken, sent only when the card would change."""
        found = self.finder.glimpse(line.text, line.segment_id, context=context)
        if found.top is not None and found.top.adcode != worker.card:
            self._send(worker, line, found)

    async def _reconsider(
        self, worker: _CallWorker, line: TranscriptAlternative, heard: str, context: Sequence[str], beaten: float
    ) -> float | None:
        """The confidence of the card the second reading gave, if it gave one surer than `beaten` (what an earlier
        second reading of the line gave), and so changed the card."""
        found = await self.finder.resolve_alternative(
            heard, line.text, line.segment_id, context=context, suggested=line.suggested
        )
        if found is None or found.top is None or found.top.confidence <= beaten:
            return None
        self._send(worker, line, found)
        return found.top.confidence

    def _send(self, worker: _CallWorker, line: Line, found: AddressCandidates) -> None:
        worker.card = found.top.adcode if found.top is not None else None
        worker.card_partial = line.segment_id if isinstance(line, TranscriptPartial) else None
        if found.candidates and not isinstance(line, TranscriptPartial):
            worker.settled = (line, found)
        self.bus.send(
            AddressCandidatesEvent(
                **found.model_dump(),
                call_id=line.call_id,
                caller_number=line.caller_number,
                language=line.language,
            )
        )
