"""Catalogue versions in the database: the shipped file until something is published, validate, publish, roll
back, history (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assist.ticket.catalogue import DEFAULT_CATALOGUE, CatalogueError
from assist.ticket.draft import Line, draft
from assist.ticket.versions import CatalogueVersions, VersionNotFound
from config.database import DatabaseSettings, create_engine

SHIPPED = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
BIKE_LEAF = (
    '          - {code: "01.01.09", name: 共享单车乱停, keywords: [共享单车乱停, 单车堵门口], '
    "response: 7d, dispatch: town}\n"
)
WITH_BIKES = SHIPPED.replace(
    "          - {code: \"01.01.04\"", BIKE_LEAF + "          - {code: \"01.01.04\"", 1
)  # fmt: skip


@pytest.fixture
def versions(tmp_path: Path) -> CatalogueVersions:
    return CatalogueVersions(
        create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}")), DEFAULT_CATALOGUE
    )


def codes(catalogue: object) -> set[str]:
    return {c.leaf.code for c in catalogue.leaves()}  # type: ignore[attr-defined]


def test_the_shipped_file_is_in_force_until_a_version_is_published(versions: CatalogueVersions) -> None:
    catalogue, version = versions.active()
    assert version is None and "01.01.09" not in codes(catalogue)
    assert versions.content() == SHIPPED and versions.history() == []
    published = versions.publish(WITH_BIKES, author="ann", comment="bikes")
    assert (published.version, published.author, published.comment, published.restored_from) == (
        1,
        "ann",
        "bikes",
        None,
    )
    assert published.leaves == len(catalogue.leaves()) + 1
    catalogue, version = versions.active()
    assert version == published and "01.01.09" in codes(catalogue)
    ticket = draft([Line("s1", "楼下共享单车乱停，都把单元门堵了")], None, catalogue)
    assert ticket.categories[0].code == "01.01.09"  # the new leaf is guessed from the caller's words


def test_an_invalid_catalogue_is_refused_naming_the_entry_and_nothing_changes(versions: CatalogueVersions) -> None:
    broken = WITH_BIKES.replace("response: 7d, dispatch: town}\n", "response: 3d, dispatch: town}\n", 1)
    with pytest.raises(CatalogueError, match=r"categories\.0\.children\.0\.children\.3\.response"):
        versions.publish(broken, author="ann")
    with pytest.raises(CatalogueError, match="codes used twice"):
        versions.publish(WITH_BIKES.replace('"01.01.09"', '"01.01.01"'), author="ann")
    with pytest.raises(CatalogueError):
        versions.publish("categories: [", author="ann")
    assert versions.history() == [] and versions.latest_id() == 0


def test_a_rollback_publishes_an_earlier_version_again(versions: CatalogueVersions) -> None:
    first = versions.publish(WITH_BIKES, author="ann")
    second = versions.publish(WITH_BIKES.replace("共享单车乱停, 单车堵门口", "共享单车"), author="ann")
    back = versions.rollback(author="bob", comment="the old words")
    assert (back.version, back.restored_from, back.author) == (3, first.version, "bob")
    assert versions.content(3) == versions.content(1) != versions.content(second.version)
    to_shipped = versions.rollback(author="bob", to=None)
    assert to_shipped.restored_from == 2  # the one before the version in force
    assert [v.version for v in versions.history()] == [4, 3, 2, 1]
    with pytest.raises(VersionNotFound):
        versions.rollback(author="bob", to=99)


def test_the_only_version_rolls_back_to_the_shipped_file(versions: CatalogueVersions) -> None:
    with pytest.raises(VersionNotFound, match="nothing was published"):
        versions.rollback(author="bob")
    versions.publish(WITH_BIKES, author="ann")
    back = versions.rollback(author="bob")
    assert back.restored_from is None and versions.content() == SHIPPED
    assert "01.01.09" not in codes(versions.active()[0])
