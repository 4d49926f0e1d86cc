from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from config.database import DatabaseSettings, create_engine
from ivr_flows.catalog import AnyPromptCatalog
from ivr_flows.registry import FlowRegistry
from ivr_flows.service import FlowService
from ivr_flows.store import FlowStore
from ivr_flows.validate import ValidationContext


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hotline.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(DatabaseSettings(url=db_url))
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> FlowStore:
    return FlowStore(engine)


@pytest.fixture
def registry(store: FlowStore) -> FlowRegistry:
    return FlowRegistry(store, poll_interval_s=0.05)


@pytest.fixture
def service(store: FlowStore, registry: FlowRegistry) -> FlowService:
    return FlowService(store, lambda: ValidationContext(prompts=AnyPromptCatalog()), on_change=registry.refresh)
