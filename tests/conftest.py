"""Shared fixtures. Keep this file small: put fixtures in tests/support/ and import them here."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.asterisk_fixture import asterisk, asterisk_factory, asterisk_install
from tests.support.gazetteer import built, extractor, gazetteer, second_readings

__all__ = [
    "asterisk",
    "asterisk_factory",
    "asterisk_install",
    "built",
    "extractor",
    "gazetteer",
    "second_readings",
]


@pytest.fixture(autouse=True)
def _restore_hotline_environment() -> Iterator[None]:
    """load_settings(config_file) sets HOTLINE_CONFIG for the process: undo that (and any HOTLINE_* change)
    after each test, so one test's settings file never leaks into the next."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("HOTLINE_")}
    yield
    for key in [key for key in os.environ if key.startswith("HOTLINE_")]:
        del os.environ[key]
    os.environ.update(saved)
