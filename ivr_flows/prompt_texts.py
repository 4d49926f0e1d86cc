"""The IVR's prompt texts (`prompt_texts.yaml`): one text per prompt and language, the engine that voices each
language, and the composite announcements (`PromptCatalog.sequence` expands queue position and expected wait into
prompt names). The audio is built from them offline by `hotline-tools prompts build` (tools/prompts.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_TEXTS = Path(__file__).with_name("prompt_texts.yaml")


NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
LANG_RE = re.compile(r"^[a-z]{2,3}$")

Echo = Callable[[str], None]


class PromptError(Exception):
    """A bad catalog, a missing tool, or a failed synthesis; the message says what to do."""


# --------------------------------------------------------------------------------------------------------------
# The catalog (prompt_texts.yaml)


class EngineChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: str
    voice: str
    options: dict[str, str | int | float] = Field(default_factory=dict)


class NumbersSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = "num_"
    max: int = Field(default=20, ge=1)


@dataclass(frozen=True)
class PromptText:
    name: str
    lang: str
    text: str


class PromptCatalog(BaseModel):
    """Prompt texts per language, the engine of each language, and the composite announcements."""

    model_config = ConfigDict(extra="forbid")

    engines: dict[str, EngineChoice]
    prompts: dict[str, dict[str, str]]
    numbers: NumbersSpec = Field(default_factory=NumbersSpec)
    # sequence name -> language -> form ("0", "1", ..., "many", "other") -> prompt names ("num:{n}" for a number)
    sequences: dict[str, dict[str, dict[str, list[str]]]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PromptCatalog:
        errors: list[str] = []
        for lang in self.engines:
            if not LANG_RE.match(lang):
                errors.append(f"engines: bad language code {lang!r}")
        for name, texts in self.prompts.items():
            if not NAME_RE.match(name):
                errors.append(f"prompts.{name}: names are lower-case letters, digits and _")
            if not texts:
                errors.append(f"prompts.{name}: no language")
            for lang, text in texts.items():
                if lang not in self.engines:
                    errors.append(f"prompts.{name}.{lang}: no engine for language {lang!r} (add it under engines)")
                if not str(text).strip():
                    errors.append(f"prompts.{name}.{lang}: empty text")
        for seq, per_lang in self.sequences.items():
            for lang, forms in per_lang.items():
                if "other" not in forms:
                    errors.append(f"sequences.{seq}.{lang}: needs an `other` form")
                for form, items in forms.items():
                    if form not in ("many", "other") and not form.isdigit():
                        errors.append(f"sequences.{seq}.{lang}.{form}: forms are counts, `many` or `other`")
                    for item in items:
                        for ref in self._refs(item, form):
                            if lang not in self.prompts.get(ref, {}):
                                errors.append(f"sequences.{seq}.{lang}.{form}: prompt {ref!r} has no {lang!r} text")
        if errors:
            raise ValueError("; ".join(errors))
        for name in self.prompts:
            self.prompts[name] = {lang: " ".join(str(text).split()) for lang, text in self.prompts[name].items()}
        return self

    def _refs(self, item: str, form: str) -> list[str]:
        if not item.startswith("num:"):
            return [item]
        arg = item[4:]
        if arg == "{n}":
            top = self.numbers.max if form in ("other", "many") else min(int(form), self.numbers.max)
            return [f"{self.numbers.prefix}{i}" for i in range(1, top + 1)]
        return [f"{self.numbers.prefix}{int(arg)}"]

    def languages(self) -> list[str]:
        return sorted({lang for texts in self.prompts.values() for lang in texts})

    def items(self) -> list[PromptText]:
        return [
            PromptText(name, lang, text)
            for name, texts in sorted(self.prompts.items())
            for lang, text in sorted(texts.items())
        ]

    def sequence(self, name: str, lang: str, n: int) -> list[str]:
        """Prompt names that say sequence `name` with count `n` in `lang` (KeyError if it has no such language).

        ``sequence("queue_position", "zh", 3)`` -> ``["queue_ahead_intro", "num_3", "queue_ahead_outro"]``.
        """
        forms = self.sequences[name][lang]
        n = max(0, int(n))
        if str(n) in forms:
            items = forms[str(n)]
        elif n > self.numbers.max and "many" in forms:
            items = forms["many"]
        else:
            items = forms["other"]
        shown = min(n, self.numbers.max)
        out: list[str] = []
        for item in items:
            if item.startswith("num:"):
                arg = item[4:]
                value = shown if arg == "{n}" else int(arg)
                if value < 1:
                    continue
                out.append(f"{self.numbers.prefix}{value}")
            else:
                out.append(item)
        return out


def load_catalog(path: Path = DEFAULT_TEXTS) -> PromptCatalog:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"{path}: {exc}") from exc
    try:
        return PromptCatalog.model_validate(data)
    except ValidationError as exc:
        raise PromptError(f"{path}: {exc}") from exc
