"""Dependencies point one way, along the call's path: SIP/Asterisk and the call (voice) -> flow (ivr_flows) ->
recognition (asr) -> bus (events) -> assistants (assist) -> desk (agent_desktop_api); `hotline` wires them and
nothing imports it; `tools` are built and measured with, never imported by the running gateway.

Checked twice: statically over every import statement of every module (lazy ones inside functions included), and
by importing a module alone in a fresh interpreter and listing what it loaded."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("hotline", "voice", "asr", "ivr_flows", "assist", "agent_desktop_api", "config", "events", "tools")
# What each package may import of the others (everything else is a violation).
ALLOWED = {
    "config": set(),
    "events": set(),
    "asr": {"config"},
    "ivr_flows": {"config"},
    "voice": {"config", "events", "ivr_flows", "asr"},
    "assist": {"config", "events"},
    "agent_desktop_api": {"config", "events", "ivr_flows", "voice"},
    "tools": {"config", "events", "asr", "ivr_flows", "assist"},
    "hotline": set(PROJECT) - {"hotline"},
}
HEAVY = ("fastapi", "sqlalchemy", "argon2", "faster_whisper", "uvicorn")
PROBE = (
    "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
    "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))"
)


def loaded(module: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(run.stdout))


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("events.contract", {"events"}),  # the contract: pydantic only
        ("ivr_flows.port", {"ivr_flows"}),  # the port the call side implements: owned by the flows
        ("ivr_flows.runtime", {"ivr_flows"}),  # the flow runtime never imports the call side
        ("config.loading", {"config"}),  # reading settings knows no section
        ("hotline.settings", set(PROJECT) - {"tools"}),  # every section, but no web framework or model
        ("voice.session", {"voice", "events", "ivr_flows", "config"}),  # the call: no desk, no recogniser loaded
        ("assist.address_assistant", {"assist", "events"}),  # a bus subscriber, nothing of the call side
        ("events.nats_link", {"events"}),  # the bus across processes knows only the contract
    ],
)
def test_a_module_loads_only_what_its_place_allows(module: str, allowed: set[str]) -> None:
    names = loaded(module)
    assert names & set(PROJECT) <= allowed, sorted(names & set(PROJECT))
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


def imports_of(package: str) -> dict[str, set[str]]:
    """Each other project package `package` imports -> the modules that import it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PROJECT and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PROJECT)
def test_a_package_imports_only_what_comes_before_it_on_the_path(package: str) -> None:
    wrong = {other: sorted(files) for other, files in imports_of(package).items() if other not in ALLOWED[package]}
    assert not wrong, f"{package} must not import {wrong}"


def test_the_allowed_imports_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, " -> ".join((*path, package))
        if package not in done:
            for other in ALLOWED[package]:
                visit(other, (*path, package))
            done.add(package)

    for package in PROJECT:
        visit(package, ())


def modules_imported_by(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_a_call_knows_routing_and_transcription_only_by_their_protocols() -> None:
    """The session is not a service locator: it holds what routing and transcription offer as small protocols,
    and they see the call as their own protocols (RoutedCall, TappedCall), so neither side imports the other."""
    session = modules_imported_by(ROOT / "voice" / "session.py")
    assert not session & {"voice.routing", "voice.taps", "voice.gateway", "voice.router"}, sorted(session)
    for module in ("routing", "taps"):
        assert "voice.session" not in modules_imported_by(ROOT / "voice" / f"{module}.py"), module
