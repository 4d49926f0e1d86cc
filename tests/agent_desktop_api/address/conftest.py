"""Builds the gazetteer once per test session (≈2 s) from the installed registry packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_desktop_api.address.builder import BuildResult, build_gazetteer
from agent_desktop_api.address.extract import AddressExtractor
from agent_desktop_api.address.gazetteer import Gazetteer
from agent_desktop_api.address.settings import AddressSettings
from agent_desktop_api.address.sources import SourceMissing

CASES = Path(__file__).with_name("cases.yaml")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    settings = AddressSettings()
    out = tmp_path_factory.mktemp("gazetteer")
    try:
        return build_gazetteer(
            settings.resolve(settings.china_division_dir), out / "beijing.json.gz", out / "beijing-districts.geojson"
        )
    except SourceMissing as exc:  # a setup problem, not a reason to skip: say what to install
        pytest.fail(f"cannot build the gazetteer: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def gazetteer(built: BuildResult) -> Gazetteer:
    return Gazetteer.load(built.gazetteer_file)


@pytest.fixture(scope="session")
def extractor(gazetteer: Gazetteer) -> AddressExtractor:
    return AddressExtractor(gazetteer)
