"""The problem catalogue: three levels of categories, the words that suggest each leaf, its default response class
and who it is dispatched to. Read from YAML and checked (unique codes, three levels, words on every leaf)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from events.ticket import CategoryChoice, ResponseClass

DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue.yaml")
Dispatch = Literal["town", "district"] | str


class CatalogueError(ValueError):
    """The catalogue file is unreadable or wrong; the message names the file and the entry."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Leaf(_Model):
    code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}$")
    name: str = Field(min_length=1, max_length=40)
    keywords: list[str] = Field(min_length=1)
    response: ResponseClass
    dispatch: Dispatch = Field(min_length=1, max_length=60)


class Branch(_Model):
    name: str = Field(min_length=1, max_length=40)
    children: list[Leaf] = Field(min_length=1)


class Top(_Model):
    name: str = Field(min_length=1, max_length=40)
    children: list[Branch] = Field(min_length=1)


@dataclass(frozen=True)
class Category:
    """A leaf with its place in the tree."""

    leaf: Leaf
    path: tuple[str, str, str]


class Catalogue(_Model):
    version: int = Field(ge=1)
    urgent_words: list[str] = Field(default_factory=list)
    categories: list[Top] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> Catalogue:
        codes = [c.leaf.code for c in self.leaves()]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"category codes used twice: {twice}")
        return self

    def leaves(self) -> list[Category]:
        return self._leaves

    def choices(self) -> list[CategoryChoice]:
        """The leaves as the desk offers them."""
        return [
            CategoryChoice(
                code=c.leaf.code,
                path=list(c.path),
                response=c.leaf.response,
                dispatch=c.leaf.dispatch,
                keywords=c.leaf.keywords,
            )
            for c in self._leaves
        ]

    @cached_property
    def _leaves(self) -> list[Category]:
        return [
            Category(leaf, (top.name, branch.name, leaf.name))
            for top in self.categories
            for branch in top.children
            for leaf in branch.children
        ]


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> Catalogue:
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    return parse_catalogue(content, str(path))


def parse_catalogue(content: str, source: str) -> Catalogue:
    """A catalogue from YAML text; CatalogueError names `source` and each wrong entry."""
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{source}: {exc}") from exc
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogueError(f"{source}: {problems}") from exc
