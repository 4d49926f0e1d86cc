"""Versions in the database: publish, refuse, roll back, history; snapshots per call; hot reload."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from config.database import DatabaseSettings, create_engine
from ivr_flows.catalog import AnyPromptCatalog
from ivr_flows.errors import FlowInvalid
from ivr_flows.registry import FlowRegistry
from ivr_flows.service import FlowNotFound, FlowService, RollbackRefused
from ivr_flows.setup import make_flow_handler
from ivr_flows.store import FlowStore, content_hash
from ivr_flows.validate import ValidationContext
from tests.ivr_flows.support import FIXTURES, FLOWS_DIR, DeclaredPrompts, FakePort, catalog_of

GOOD = (FIXTURES / "good.yaml").read_text()
GOOD_V2 = GOOD.replace("name: Test line", "name: Test line v2").replace("prompts: [welcome]", "prompts: [welcome2]")
BROKEN = GOOD.replace("next: menu", "next: nowhere")


def test_publish_history_rollback(service: FlowService, store: FlowStore) -> None:
    first = service.publish(GOOD, "good.yaml", author="alice", comment="first")
    assert first.created and first.version.version == 1 and first.version.author == "alice"
    second = service.publish(GOOD_V2, "good.yaml", author="bob", comment="new greeting")
    assert second.version.version == 2
    assert store.active("9999").content == GOOD_V2  # type: ignore[union-attr]

    again = service.publish(GOOD_V2, "good.yaml", author="bob")
    assert not again.created and again.version.version == 2  # identical content: nothing added

    back = service.rollback("9999", author="carol", comment="caller complaints")
    assert back.version.version == 3 and back.version.restored_from == 1
    assert back.version.content == GOOD and back.version.content_hash == content_hash(GOOD)
    assert back.version.comment == "rollback to v1: caller complaints"

    forward = service.rollback("9999", to=2, author="carol")
    assert forward.version.version == 4 and forward.version.content == GOOD_V2

    history = store.history("9999")
    assert [(v.version, v.author, v.restored_from) for v in history] == [
        (4, "carol", 2),
        (3, "carol", 1),
        (2, "bob", None),
        (1, "alice", None),
    ]
    assert all(v.created_at.tzinfo is not None for v in history)
    assert [v.number for v in store.active_all()] == ["9999"]


def test_invalid_publish_leaves_active_untouched(service: FlowService, store: FlowStore) -> None:
    service.publish(GOOD, "good.yaml", author="alice")
    with pytest.raises(FlowInvalid) as caught:
        service.publish(BROKEN, "flows/good.yaml", author="mallory")
    error = caught.value.errors[0]
    assert (error.file, error.line, error.step) == ("flows/good.yaml", 10, "hello")
    assert error.message == "unknown target step 'nowhere'"
    assert store.active("9999").version == 1  # type: ignore[union-attr]
    assert len(store.history("9999")) == 1


def test_rollback_refusals(service: FlowService) -> None:
    with pytest.raises(FlowNotFound):
        service.rollback("9999", author="a")
    service.publish(GOOD, "good.yaml", author="a")
    with pytest.raises(RollbackRefused, match="no version before 1"):
        service.rollback("9999", author="a")
    service.publish(GOOD_V2, "good.yaml", author="a")
    with pytest.raises(RollbackRefused, match="already"):
        service.rollback("9999", to=2, author="a")
    with pytest.raises(FlowNotFound):
        service.rollback("9999", to=7, author="a")


def test_rollback_revalidates(store: FlowStore) -> None:
    prompts = {"ok": True}

    def context() -> ValidationContext:
        names = ("welcome", "welcome2", "menu", "goodbye", "callback_recorded")
        return ValidationContext(prompts=catalog_of(*names) if prompts["ok"] else catalog_of("welcome2"))

    service = FlowService(store, context)
    service.publish(GOOD, "good.yaml", author="a")
    service.publish(GOOD_V2, "good.yaml", author="a")
    prompts["ok"] = False  # the old version's prompts were deleted since
    with pytest.raises(FlowInvalid):
        service.rollback("9999", author="a")
    assert store.active("9999").version == 2  # type: ignore[union-attr]


def test_diff(service: FlowService) -> None:
    assert service.diff("9999", GOOD, "good.yaml").startswith("--- 9999 (none active)")
    service.publish(GOOD, "good.yaml", author="a")
    assert service.diff("9999", GOOD, "good.yaml") == ""
    diff = service.diff("9999", GOOD_V2, "new.yaml")
    assert "--- 9999@v1 (active)" in diff and "+++ new.yaml" in diff
    assert "-name: Test line\n+name: Test line v2\n" in diff


def test_bootstrap_publishes_shipped_flows_once(store: FlowStore) -> None:
    prompts = DeclaredPrompts()
    service = FlowService(store, lambda: ValidationContext(prompts=prompts, sequences=prompts))
    reports = service.bootstrap(FLOWS_DIR)
    assert [r.ok for r in reports] == [True]
    active = store.active("12345")
    assert active is not None and (active.version, active.author) == (1, "system")
    assert active.source == "12345.yaml"
    assert service.bootstrap(FLOWS_DIR) == []  # not empty any more: nothing happens


def test_bootstrap_skips_an_invalid_shipped_flow(store: FlowStore, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BROKEN.replace('"9999"', '"8888"'))
    service = FlowService(store, lambda: ValidationContext(prompts=AnyPromptCatalog()))
    reports = service.bootstrap(tmp_path)
    assert sorted((Path(r.file).name, r.ok) for r in reports) == [("bad.yaml", False), ("good.yaml", True)]
    assert store.active("8888") is None and store.active("9999") is not None


async def test_call_keeps_its_version_and_next_call_gets_the_new_one(
    service: FlowService, registry: FlowRegistry
) -> None:
    service.publish(GOOD, "good.yaml", author="a")
    catalog = catalog_of("welcome", "welcome2", "menu", "goodbye", "callback_recorded")
    handler = make_flow_handler(registry, catalog, number="9999")

    class SlowPort(FakePort):
        """Holds the caller in the menu until the test has published version 2."""

        def __init__(self) -> None:
            super().__init__(["2"])
            self.in_menu = asyncio.Event()
            self.go_on = asyncio.Event()

        async def gather(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.in_menu.set()
            await self.go_on.wait()
            return await super().gather(*args, **kwargs)

    first = SlowPort()
    call = asyncio.create_task(handler(first))
    await first.in_menu.wait()
    service.publish(GOOD_V2, "good.yaml", author="b")  # refreshes the registry in this process at once
    assert registry.get("9999").version == 2  # type: ignore[union-attr]
    first.go_on.set()
    await call
    assert first.played()[0] == "zh/welcome"  # version 1's greeting, although version 2 is active now
    assert first.requests[0].ivr_path[-1] == "queue"

    second = FakePort(["2"])
    await handler(second)
    assert second.played()[0] == "zh/welcome2"


async def test_no_flow_for_the_number_hangs_up(registry: FlowRegistry) -> None:
    registry.refresh()
    port = FakePort()
    await make_flow_handler(registry, AnyPromptCatalog(), number="4040")(port)
    assert port.kinds() == ["hangup"]


async def test_hot_reload_from_another_process_through_the_database(registry: FlowRegistry, db_url: str) -> None:
    # The "CLI process": its own engine, store and service on the same database file.
    other_engine = create_engine(DatabaseSettings(url=db_url))
    other = FlowService(FlowStore(other_engine), lambda: ValidationContext(prompts=AnyPromptCatalog()))
    other.publish(GOOD, "good.yaml", author="a")
    await registry.start()
    try:
        assert registry.get("9999").version == 1  # type: ignore[union-attr]
        other.publish(GOOD_V2, "good.yaml", author="b")
        deadline = time.monotonic() + 3
        while registry.get("9999").version != 2:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the registry did not see version 2"
            await asyncio.sleep(0.02)
        assert registry.get("9999").flow.name == "Test line v2"  # type: ignore[union-attr]
    finally:
        await registry.stop()
        other_engine.dispose()


def test_registry_refresh_is_cheap_when_nothing_changed(service: FlowService, registry: FlowRegistry) -> None:
    service.publish(GOOD, "good.yaml", author="a")
    before = registry.get("9999")
    assert registry.refresh() is False
    assert registry.get("9999") is before


def test_registry_keeps_serving_when_stored_content_no_longer_parses(
    service: FlowService, registry: FlowRegistry, store: FlowStore
) -> None:
    service.publish(GOOD, "good.yaml", author="a")
    store.add("9999", "number: [broken", author="someone")  # bypassing validation (e.g. a format change)
    assert registry.refresh() is True
    assert registry.get("9999").version == 1  # type: ignore[union-attr]


async def test_components_start_bootstraps_and_loads(tmp_path: Path, db_url: str) -> None:
    from ivr_flows.settings import FlowsSettings
    from ivr_flows.setup import build_flow_components

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "9999.yaml").write_text(GOOD)
    settings = FlowsSettings(flows_dir=shipped, prompts_dir=tmp_path, check_prompts=False, poll_interval_s=0.05)
    components = build_flow_components(create_engine(DatabaseSettings(url=db_url)), settings)
    await components.start()
    try:
        active = components.registry.get("9999")
        assert active is not None and active.version == 1
        assert components.store.history("9999")[0].author == "system"
    finally:
        await components.stop()
