"""Assembles the flow engine's parts from settings (one place for the CLI, the admin API and the gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from config.database import DatabaseSettings, create_engine
from config.paths import resolve as resolve_path
from ivr_flows.catalog import FolderPromptCatalog, PromptCatalog, PromptSequences
from ivr_flows.port import CallPort
from ivr_flows.registry import FlowRegistry
from ivr_flows.runtime import Clock, FlowRunner, utc_now
from ivr_flows.service import FlowService
from ivr_flows.settings import FlowsSettings
from ivr_flows.store import FlowStore
from ivr_flows.validate import ValidationContext

log = structlog.get_logger(__name__)


@dataclass
class FlowComponents:
    engine: Engine
    store: FlowStore
    catalog: FolderPromptCatalog
    service: FlowService
    registry: FlowRegistry
    settings: FlowsSettings

    async def start(self) -> None:
        """Gateway start: publish the shipped flows into an empty database, load, and begin polling."""
        await asyncio.to_thread(self.service.bootstrap, self.settings.flows_dir)
        await self.registry.start()
        if not self.registry.all():
            log.error("flows.none_active", hint="hotline flows validate ivr_flows/flows/*.yaml")

    async def stop(self) -> None:
        await self.registry.stop()
        self.engine.dispose()


@dataclass(frozen=True)
class FlowsConfig:
    """What the flow engine needs from its host's settings: the `flows` section with its paths resolved, the
    database, and the operators' skills (None: not known, routing checks are skipped)."""

    flows: FlowsSettings
    database: DatabaseSettings
    operators: Sequence[frozenset[str]] | None = None
    interpreter_languages: Collection[str] | None = None


def resolved_flows_settings(flows: FlowsSettings, resolve: Callable[[Path], Path] = resolve_path) -> FlowsSettings:
    return flows.model_copy(
        update={
            "flows_dir": resolve(flows.flows_dir),
            "prompts_dir": resolve(flows.prompts_dir),
            "prompt_texts": resolve(flows.prompt_texts),
        }
    )


def context_factory(
    catalog: FolderPromptCatalog,
    flows: FlowsSettings,
    operators: Sequence[frozenset[str]] | None,
    interpreter_languages: Collection[str] | None,
) -> Callable[[], ValidationContext]:
    def context() -> ValidationContext:
        catalog.reload()  # validation always looks at the prompt files as they are now
        return ValidationContext(
            prompts=catalog if flows.check_prompts else None,
            sequences=catalog if catalog.has_sequences else None,
            operator_skills=operators,
            interpreter_languages=interpreter_languages,
        )

    return context


def build_flow_components(
    engine: Engine,
    flows: FlowsSettings,
    *,
    operators: Sequence[frozenset[str]] | None = None,
    interpreter_languages: Collection[str] | None = None,
) -> FlowComponents:
    catalog = FolderPromptCatalog(flows.prompts_dir, flows.prompt_texts)
    store = FlowStore(engine)
    context = context_factory(catalog, flows, operators, interpreter_languages)
    registry = FlowRegistry(store, poll_interval_s=flows.poll_interval_s, on_reload=lambda _flows: catalog.reload())
    service = FlowService(store, context, on_change=registry.refresh)
    return FlowComponents(engine, store, catalog, service, registry, flows)


def components_from_config(config: FlowsConfig) -> FlowComponents:
    return build_flow_components(
        create_engine(config.database),
        config.flows,
        operators=config.operators,
        interpreter_languages=config.interpreter_languages,
    )


CallScript = Callable[[CallPort], Coroutine[Any, Any, None]]


def make_flow_handler(
    registry: FlowRegistry,
    prompts: PromptCatalog,
    *,
    sequences: PromptSequences | None = None,
    number: str | Callable[[CallPort], str],
    clock: Clock = utc_now,
    on_finished: Callable[[CallPort, FlowRunner], None] | None = None,
) -> CallScript:
    """The call script for the gateway: snapshot the active flow at the call's start, then run it."""

    async def run_flow(port: CallPort) -> None:
        entry = number if isinstance(number, str) else number(port)
        active = registry.get(entry)  # this call's snapshot: a publish during the call does not affect it
        if active is None:
            log.error("ivr.no_flow", number=entry, call_id=port.call_id)
            await port.hangup()
            return
        runner = FlowRunner(active.flow, prompts, clock, sequences=sequences, version=active.version)
        try:
            await runner.run(port)
        finally:
            if on_finished is not None:
                on_finished(port, runner)

    return run_flow
