"""Schemathesis against the desktop app's own OpenAPI description (desktop, auth and flow-admin routes), with an
operator's and an admin's token, valid and invalid requests: no 5xx anywhere, and on the desktop's own routes no
response off its documented schema. (It found two 500s in the flow admin: a YAML tag `!0`, a 2**63 version.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from agent_desktop_api.desktop import mount_desktop
from assist.address.gazetteer import Gazetteer
from assist.address.search import PlaceSearch
from assist.ticket.catalogue import load_catalogue
from ivr_flows.catalog import AnyPromptCatalog
from ivr_flows.registry import FlowRegistry
from ivr_flows.service import FlowService
from ivr_flows.store import FlowStore
from ivr_flows.validate import ValidationContext
from tests.agent_desktop_api.desktop_support import FAST, FakeService, make_engine

pytestmark = pytest.mark.slow  # 7-10 s on two shared cores

TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def desktop_schema(tmp_path_factory: pytest.TempPathFactory, gazetteer: Gazetteer) -> Iterator[Any]:
    engine = make_engine(Path(tmp_path_factory.mktemp("fuzz")) / "db.sqlite")
    service = FakeService(engine)
    assert service.gateway is not None
    service.gateway.live["c1"] = {"call_id": "c1", "operator_id": "op1002", "interpreter": False, "seconds": 1.0}
    auth = AuthService(engine, hasher=FAST)
    store = FlowStore(engine)
    flows = FlowService(
        store, lambda: ValidationContext(prompts=AnyPromptCatalog()), on_change=FlowRegistry(store).refresh
    )
    app = create_app(auth_service=auth, flow_service=flows)
    search = PlaceSearch.from_gazetteer(gazetteer).search  # the search and the catalogue as `serve` wires them
    mount_desktop(app, service, categories=load_catalogue().choices(), place_search=search)
    auth.add_user("op1002", "operator", "pw")
    auth.add_user("ann", "admin", "pw")
    for name in ("op1002", "ann"):
        issued = auth.login(name, "pw")
        assert issued is not None
        TOKENS[name] = issued.token
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app)
    TOKENS.clear()


DESKTOP_PATHS = ("/api/me", "/api/calls", "/api/admin")
SKIP = {("POST", "/api/auth/logout")}  # would end the tokens the other requests use


def _fuzz(operation: Any) -> None:
    # Response bodies are checked against the schema on the desktop's routes; elsewhere "no 5xx" only.
    checks = [not_a_server_error]
    if operation.path.startswith(DESKTOP_PATHS):
        checks.append(response_schema_conformance)
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @given(case=strategy)
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: Any) -> None:
        for name in ("op1002", "ann"):
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKENS[name]}"}, checks=checks)

    fuzz()


def test_no_server_errors(desktop_schema: Any) -> None:
    operations = [result.ok() for result in desktop_schema.get_all_operations()]
    tested = [op for op in operations if (op.method.upper(), op.path) not in SKIP]
    for operation in tested:
        _fuzz(operation)
    assert len(tested) >= 15
