"""Dependencies point one way, checked by importing a module alone in a fresh interpreter and listing which of
the project's packages (and heavy libraries) it loaded. Each row is a boundary that holds now; more rows come as
the packages are untangled."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROJECT = ("voice", "asr", "ivr_flows", "agent_desktop_api", "config", "events")
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
    ],
)
def test_a_module_loads_only_what_its_place_allows(module: str, allowed: set[str]) -> None:
    names = loaded(module)
    assert names & set(PROJECT) <= allowed, sorted(names & set(PROJECT))
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
