"""Validation of a flow file: every problem at once, each with its file, line and step.

Steps are validated one by one (not as one big model) so that a broken step does not hide the problems of the
others, and the graph checks still run over everything that did parse.

Definitions used by the graph checks:
- An *automatic* edge is one a call follows without the caller pressing a key: play/goto/set_language `next`,
  branch rules and default, a menu's `on_failure`, route/interpreter `on_no_operator`/`on_callback`, transfer
  `on_failure`. Menu options are *input* edges.
- A *loop without exit* is a cycle made only of automatic edges: a caller who presses nothing (or a queue that
  keeps refusing) would go round it forever. Cycles through a menu option (e.g. "9: repeat") are fine: the
  caller chose them, and the menu's retry limit ends a silent caller's stay.
- A prompt is *missing* when, for some language the caller can be in at that step (found by following
  set_language steps from the start), no language of the fallback chain (caller's language, then the flow's
  `languages`) has an audio file. `NAME@LANG` must exist in LANG itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ivr_flows.catalog import PromptCatalog, PromptSequences
from ivr_flows.errors import FlowError
from ivr_flows.loader import LoadedYaml, YamlPath, load_yaml
from ivr_flows.model import (
    DIGITS,
    STEP_ADAPTER,
    STEP_ID,
    STEP_TYPES,
    BranchStep,
    Flow,
    FlowHeader,
    GotoStep,
    HangupStep,
    InterpreterStep,
    MenuStep,
    PlayStep,
    RouteStep,
    SetLanguageStep,
    Step,
    TransferStep,
    split_prompt,
)

_STEP_ID = re.compile(STEP_ID)


@dataclass(frozen=True)
class ValidationContext:
    """What a flow is checked against besides its own text. `None` skips that check."""

    prompts: PromptCatalog | None = None
    sequences: PromptSequences | None = None  # queue announcements; None skips their check
    operator_skills: Sequence[frozenset[str]] | None = None  # one set per operator (settings telephony.operators)
    interpreter_languages: Collection[str] | None = None  # languages the interpreter centre has an extension for


@dataclass
class ValidationReport:
    file: str
    flow: Flow | None
    errors: list[FlowError] = field(default_factory=list)
    warnings: list[FlowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def problems(self) -> list[FlowError]:
        return sorted([*self.errors, *self.warnings], key=lambda e: (e.line, e.severity, e.message))


@dataclass(frozen=True)
class Edge:
    target: str
    where: tuple[str | int, ...]  # field path inside the step
    automatic: bool


def step_edges(step: Step) -> Iterator[Edge]:
    """Every step a step can lead to, and whether the call follows that edge without caller input."""
    if isinstance(step, PlayStep | SetLanguageStep | GotoStep):
        yield Edge(step.next, ("next",), True)
    elif isinstance(step, MenuStep):
        for digits, target in step.options.items():
            yield Edge(target, ("options", digits), False)
        yield Edge(step.on_failure, ("on_failure",), True)
    elif isinstance(step, RouteStep | InterpreterStep):
        if step.on_no_operator is not None:
            yield Edge(step.on_no_operator, ("on_no_operator",), True)
        if step.on_callback is not None:
            yield Edge(step.on_callback, ("on_callback",), True)
    elif isinstance(step, TransferStep):
        if step.on_failure is not None:
            yield Edge(step.on_failure, ("on_failure",), True)
    elif isinstance(step, BranchStep):
        for index, rule in enumerate(step.rules):
            yield Edge(rule.next, ("rules", index, "next"), True)
        yield Edge(step.default, ("default",), True)


def step_prompts(step: Step) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Prompt references of a step with their field path."""
    if isinstance(step, PlayStep | MenuStep | RouteStep | InterpreterStep | HangupStep):
        for index, ref in enumerate(step.prompts):
            yield ref, ("prompts", index)
    if isinstance(step, MenuStep):
        if step.invalid_prompt:
            yield step.invalid_prompt, ("invalid_prompt",)
        if step.timeout_prompt:
            yield step.timeout_prompt, ("timeout_prompt",)


class _Validator:
    def __init__(self, loaded: LoadedYaml, file: str, context: ValidationContext) -> None:
        self.loaded = loaded
        self.file = file
        self.context = context
        self.errors: list[FlowError] = list(loaded.errors)
        self.warnings: list[FlowError] = []
        self.header: FlowHeader | None = None
        self.steps: dict[str, Step] = {}
        self.raw_steps: dict[str, Any] = {}
        self.broken: set[str] = set()

    # ---- reporting ----

    def error(self, path: YamlPath, step: str | None, message: str) -> None:
        self.errors.append(FlowError(self.file, self.loaded.line_of(path), step, message))

    def warning(self, path: YamlPath, step: str | None, message: str) -> None:
        self.warnings.append(FlowError(self.file, self.loaded.line_of(path), step, message, "warning"))

    def pydantic_errors(self, exc: ValidationError, base: YamlPath, step: str | None, tag: Any = None) -> None:
        for item in exc.errors():
            loc = tuple(item["loc"])
            kind = item["type"]
            if kind == "union_tag_invalid":
                self.error(
                    (*base, "type"), step, f"unknown step type {tag!r} (expected one of: {', '.join(STEP_TYPES)})"
                )
                continue
            if kind == "union_tag_not_found":
                self.error(base, step, f"step has no 'type' (one of: {', '.join(STEP_TYPES)})")
                continue
            if tag is not None and loc and loc[0] == tag:
                loc = loc[1:]  # a tagged union puts the tag first
            where = ".".join(str(part) for part in loc)
            if kind == "extra_forbidden":
                self.error((*base, *loc), step, f"unknown field {loc[-1]!r}")
            elif kind == "missing":
                self.error((*base, *loc[:-1]), step, f"missing field {where!r}")
            elif kind == "string_pattern_mismatch":
                self.error((*base, *loc), step, f"{where}: {item['input']!r} is not {_expected_form(loc)}")
            else:
                message = item["msg"].removeprefix("Value error, ")
                self.error((*base, *loc), step, f"{where}: {message}" if where else message)

    # ---- checks ----

    def run(self) -> ValidationReport:
        data = self.loaded.data
        if data is None and self.errors:  # YAML errors, already listed
            return self.report(None)
        if not isinstance(data, dict):  # also `null`, `~` or a bare `---`: a document with no mapping
            self.error((), None, "a flow file must be a mapping (number, name, start, steps, ...)")
            return self.report(None)
        self.check_header({key: value for key, value in data.items() if key != "steps"})
        self.check_steps(data.get("steps"))
        if self.steps or self.raw_steps:
            self.check_targets(data.get("start"))
            self.check_reachable(data.get("start"))
            self.check_loops()
            self.check_prompts(data.get("start"))
            self.check_routing()
        flow = None
        if not self.errors:
            try:
                flow = Flow.model_validate(data)
            except ValidationError as exc:  # should not happen: the checks above cover the model
                self.pydantic_errors(exc, (), None)
        return self.report(flow)

    def report(self, flow: Flow | None) -> ValidationReport:
        def by_line(error: FlowError) -> tuple[int, str]:
            return error.line, error.message

        return ValidationReport(self.file, flow, sorted(self.errors, key=by_line), sorted(self.warnings, key=by_line))

    def check_header(self, header: dict[str, Any]) -> None:
        try:
            self.header = FlowHeader.model_validate(header)
        except ValidationError as exc:
            self.pydantic_errors(exc, (), None)

    def check_steps(self, steps: Any) -> None:
        if steps is None:
            self.error((), None, "missing field 'steps'")
            return
        if not isinstance(steps, dict) or not steps:
            self.error(("steps",), None, "'steps' must map step ids to steps")
            return
        for step_id, raw in steps.items():
            base: YamlPath = ("steps", step_id)
            self.raw_steps[step_id] = raw
            if not _STEP_ID.match(step_id):
                self.error(base, step_id, "bad step id (letters, digits, _ . -; must not start with a digit)")
            if isinstance(raw, dict) and raw.get("type") == "menu":
                self.check_menu_options(step_id, raw)
            if not isinstance(raw, dict):
                self.error(base, step_id, "a step must be a mapping with a 'type'")
                self.broken.add(step_id)
                continue
            try:
                self.steps[step_id] = STEP_ADAPTER.validate_python(raw)
            except ValidationError as exc:
                self.broken.add(step_id)
                self.pydantic_errors(exc, base, step_id, raw.get("type"))

    def check_menu_options(self, step_id: str, raw: dict[str, Any]) -> None:
        base: YamlPath = ("steps", step_id, "options")
        options = raw.get("options")
        if not isinstance(options, dict):
            return  # missing or of the wrong type: the model reports it
        if not options:
            self.error(base, step_id, "menu without options")
            return
        max_digits = raw.get("max_digits", 1)
        terminator = raw.get("terminator", "")
        for digits in options:
            if not DIGITS.match(digits):
                self.error((*base, digits), step_id, f"bad digits {digits!r} (use 0-9, * and #)")
            elif isinstance(max_digits, int) and len(digits) > max_digits:
                self.error((*base, digits), step_id, f"option {digits!r} is longer than max_digits ({max_digits})")
            elif terminator and terminator in digits:
                self.error((*base, digits), step_id, f"option {digits!r} contains the terminator {terminator!r}")

    def edges(self, step_id: str) -> list[Edge]:
        step = self.steps.get(step_id)
        if step is not None:
            return list(step_edges(step))
        # A step that did not parse: any text in it naming a step counts as an edge, so that its targets are not
        # reported unreachable on top of its own error.
        return [Edge(text, (), False) for text in _strings(self.raw_steps.get(step_id)) if text in self.raw_steps]

    def check_targets(self, start: Any) -> None:
        known = list(self.raw_steps)
        if isinstance(start, str) and start not in self.raw_steps:
            self.error(("start",), None, f"start step {start!r} is not defined{_suggest(start, known)}")
        for step_id, step in self.steps.items():
            for edge in step_edges(step):
                if edge.target not in self.raw_steps:
                    self.error(
                        ("steps", step_id, *edge.where),
                        step_id,
                        f"unknown target step {edge.target!r}{_suggest(edge.target, known)}",
                    )

    def check_reachable(self, start: Any) -> None:
        if not isinstance(start, str) or start not in self.raw_steps:
            return
        seen = {start}
        todo = [start]
        while todo:
            for edge in self.edges(todo.pop()):
                if edge.target in self.raw_steps and edge.target not in seen:
                    seen.add(edge.target)
                    todo.append(edge.target)
        for step_id in self.raw_steps:
            if step_id not in seen:
                self.error(("steps", step_id), step_id, f"unreachable step (no path from start {start!r})")

    def check_loops(self) -> None:
        graph = {
            step_id: [e.target for e in step_edges(step) if e.automatic and e.target in self.steps]
            for step_id, step in self.steps.items()
        }
        for component in _cycles(graph):
            first = min(component, key=lambda s: self.loaded.line_of(("steps", s)))
            cycle = _cycle_path(graph, first, set(component))
            self.error(
                ("steps", first),
                first,
                "loop without exit: " + " → ".join(cycle) + " (no menu choice on it: a caller who presses nothing"
                " would never leave it)",
            )

    def languages_at(self, start: str) -> dict[str, set[str]]:
        """Languages the caller can be in on arrival at each step (set_language changes it for what follows)."""
        assert self.header is not None
        at: dict[str, set[str]] = {step_id: set() for step_id in self.raw_steps}
        at[start].add(self.header.default_language)
        todo = [start]
        while todo:
            step_id = todo.pop()
            step = self.steps.get(step_id)
            leaving = {step.language} if isinstance(step, SetLanguageStep) else at[step_id]
            for edge in self.edges(step_id):
                if edge.target in at and not leaving <= at[edge.target]:
                    at[edge.target] |= leaving
                    todo.append(edge.target)
        return at

    def check_prompts(self, start: Any) -> None:
        catalog = self.context.prompts
        if catalog is None or self.header is None or not isinstance(start, str) or start not in self.raw_steps:
            return
        header = self.header
        languages_at = self.languages_at(start)

        def chain(language: str) -> list[str]:
            return [language, *(lang for lang in header.languages if lang != language)]

        def missing_in(name: str, languages: set[str]) -> list[str]:
            return sorted(lang for lang in languages if not any(catalog.path(name, tried) for tried in chain(lang)))

        for step_id, step in self.steps.items():
            languages = languages_at.get(step_id, set())
            if not languages:
                continue  # unreachable: already reported
            for ref, where in step_prompts(step):
                name, fixed = split_prompt(ref)
                if fixed is not None:
                    if catalog.path(name, fixed) is None:
                        self.error(("steps", step_id, *where), step_id, f"missing prompt {ref!r}: no {fixed} audio")
                    continue
                for lang in missing_in(name, languages):
                    self.error(
                        ("steps", step_id, *where),
                        step_id,
                        f"missing prompt {name!r} for caller language {lang} (tried {', '.join(chain(lang))})",
                    )
            if isinstance(step, RouteStep | InterpreterStep):
                for lang in sorted(languages):
                    for problem in self.announcement_problems(lang, chain(lang)):
                        self.error(("steps", step_id), step_id, problem)

    def announcement_problems(self, language: str, chain: list[str]) -> list[str]:
        """Queue announcements a caller in `language` would hear: each sequence must be sayable, in full, in one
        language of the chain (a sentence is never mixed from two languages)."""
        assert self.header is not None and self.context.prompts is not None
        catalog = self.context.prompts
        names = self.header.queue_prompts
        problems = []
        if not any(catalog.path(names.callback, lang) for lang in chain):
            problems.append(f"missing prompt {names.callback!r} for caller language {language} (queue callback)")
        sequences = self.context.sequences
        if sequences is None:
            return problems
        for name, counts in ((names.position, range(0, 31)), (names.wait, range(1, 31))):
            gaps: list[str] = []
            for lang in chain:
                try:
                    parts = {part for n in counts for part in sequences.sequence(name, lang, n)}
                except KeyError:
                    continue
                gaps = sorted(part for part in parts if catalog.path(part, lang) is None)
                if not gaps:
                    break
                gaps = [f"{part}@{lang}" for part in gaps]
            else:
                detail = f"no audio for {', '.join(gaps)}" if gaps else "no language of the chain has it"
                problems.append(
                    f"queue announcement {name!r} cannot be said to a caller in {language} "
                    f"(tried {', '.join(chain)}): {detail}"
                )
        return problems

    def check_routing(self) -> None:
        operators = self.context.operator_skills
        interpreters = self.context.interpreter_languages
        for step_id, step in self.steps.items():
            if not isinstance(step, RouteStep | InterpreterStep):
                continue
            wanted = frozenset(step.skills)
            if operators is not None and not any(wanted <= skills for skills in operators):
                self.warning(
                    ("steps", step_id, "skills"),
                    step_id,
                    f"no operator has skills {sorted(wanted)} (telephony.operators): queue {step.queue!r} will"
                    " always answer no_operators",
                )
            if isinstance(step, InterpreterStep) and interpreters is not None and step.language not in interpreters:
                self.warning(
                    ("steps", step_id, "language"),
                    step_id,
                    f"the interpreter centre has no extension for language {step.language!r}",
                )


_LANGUAGE_FIELDS = {"default_language", "languages", "language", "skills"}
_PROMPT_FIELDS = {"prompts", "invalid_prompt", "timeout_prompt", "callback"}
_TARGET_FIELDS = {"next", "start", "default", "on_failure", "on_no_operator", "on_callback", "options"}


def _expected_form(loc: tuple[Any, ...]) -> str:
    """What a field should look like, in words (pydantic would print the regular expression)."""
    names = {part for part in loc if isinstance(part, str)}
    if names & _LANGUAGE_FIELDS:
        return "a language code (zh, en, fr, ..., zh-TW, or other)"
    if names & _PROMPT_FIELDS:
        return "a prompt name (letters, digits, _ . -; NAME@LANG for a fixed language)"
    if names & _TARGET_FIELDS:
        return "a step id (letters, digits, _ . -; not starting with a digit)"
    if "hours" in names:
        return "a time range HH:MM-HH:MM"
    if "number" in names:
        return "a phone number (digits, * # +)"
    return "in the expected form"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph[node]
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _cycle_path(graph: Mapping[str, list[str]], first: str, members: set[str]) -> list[str]:
    """The shortest cycle through `first` inside its component (breadth-first), for the message."""
    parent: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for nxt in graph[node]:
                if nxt == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(parent[path[-1]])
                    return [*reversed(path), first]
                if nxt in members and nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    return [first, first]


def validate_text(text: str, file: str, context: ValidationContext | None = None) -> ValidationReport:
    return _Validator(load_yaml(text, file), file, context or ValidationContext()).run()


def validate_file(path: Path, context: ValidationContext | None = None) -> ValidationReport:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ValidationReport(str(path), None, [FlowError(str(path), 1, None, f"cannot read: {exc}")])
    return validate_text(text, str(path), context)


def parse_flow(text: str, file: str = "<flow>") -> Flow:
    """Parse a flow without external checks (prompts, operators); raises FlowInvalid listing every problem."""
    from ivr_flows.errors import FlowInvalid

    report = validate_text(text, file)
    if report.flow is None:
        raise FlowInvalid(report.errors)
    return report.flow
