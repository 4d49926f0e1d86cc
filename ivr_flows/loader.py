"""YAML → plain data, remembering the line of every key and list item, and refusing duplicate keys.

We use PyYAML's composer (already a dependency) and build values from its nodes ourselves rather than add
ruamel.yaml: the node tree carries a start line for everything, and walking it lets us catch duplicate keys, which
PyYAML's constructor silently collapses to the last one (a menu with two "1:" entries would lose one).

Building values ourselves also fixes YAML 1.1 surprises that bite flow files: keys stay text (`1:` is the digit
"1", not the integer 1; `0:` is not 0), `no`/`on`/`yes` stay text (`no` is Norwegian), `18:00` is not the
sexagesimal integer 1080, and `010` is not octal 8. Only `true`/`false` are booleans (as in YAML 1.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr_flows.errors import FlowError

# Limits against hostile files (the admin API takes flows from the network). The shipped 12345 flow is about
# 12 KB, 600 values and 6 levels deep; these leave room for a hundred times that.
MAX_FLOW_BYTES = 512 * 1024
MAX_DEPTH = 40  # PyYAML's composer recurses per level: deeper input would exhaust the stack
MAX_VALUES = 50_000  # after alias expansion: a "billion laughs" file is a few hundred bytes

YamlPath = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"


@dataclass
class LoadedYaml:
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)  # path of a key or item → 1-based line
    errors: list[FlowError] = field(default_factory=list)

    def line_of(self, path: YamlPath) -> int:
        """Line of `path`, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return 1


class _TooLarge(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[YamlPath, int] = {}
        self.errors: list[FlowError] = []
        self._constructor = SafeConstructor()
        self._values = 0

    def build(self, node: Node, path: YamlPath, depth: int = 0) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooLarge(
                node.start_mark.line + 1, f"the document expands to more than {MAX_VALUES} values (alias bomb?)"
            )
        if depth > MAX_DEPTH:  # a recursive alias; flow files are shallow
            self._error(node, path, "YAML nesting too deep (recursive alias?)")
            return None
        if isinstance(node, MappingNode):
            result: dict[str, Any] = {}
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    self._error(key_node, path, "a key must be plain text")
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in first_line:
                    self._error(key_node, path, self._duplicate_message(path, key, first_line[key]))
                    continue
                first_line[key] = line
                self.lines[(*path, key)] = line
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, index), depth + 1))
            return items
        assert isinstance(node, ScalarNode)
        return self._scalar(node, path)

    def _scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        text = node.value
        if node.style is not None or node.tag == _STR:  # quoted or explicitly a string
            return text
        if node.tag == _BOOL:
            return {"true": True, "false": False}.get(text.lower(), text)
        if node.tag in (_INT, _FLOAT) and (":" in text or (len(text) > 1 and text[0] == "0" and text[1] != ".")):
            return text
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # `!x`, `!!timestamp 2020-99-99`: refuse the flow
            problem = getattr(exc, "problem", None) or str(exc)
            self._error(node, path, f"YAML error: {problem}")
            return text

    @staticmethod
    def _duplicate_message(path: YamlPath, key: str, first: int) -> str:
        if len(path) == 3 and path[0] == "steps" and path[2] == "options":
            return f"digit {key!r} used twice in menu (first at line {first})"
        where = ".".join(str(part) for part in path) or "top level"
        return f"duplicate key {key!r} in {where} (first at line {first})"

    def _error(self, node: Node, path: YamlPath, message: str) -> None:
        step = str(path[1]) if len(path) >= 2 and path[0] == "steps" else None
        self.errors.append(FlowError(self.file, node.start_mark.line + 1, step, message))


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _prescan(text: str) -> tuple[int, str] | None:
    """(line, problem) if the event stream nests too deep or has too many values. PyYAML's parser is iterative,
    so this walk is bounded where its recursive composer would not be."""
    depth = values = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return _line(event), f"YAML nested more than {MAX_DEPTH} levels deep"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            values += 1
            if values > MAX_VALUES:
                return _line(event), f"the document has more than {MAX_VALUES} values"
    return None


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document; syntax errors, duplicate keys and oversized input come back in `errors`, never
    raised."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FLOW_BYTES:
        return LoadedYaml(None, {}, [FlowError(file, 1, None, f"the file is {size} bytes, over {MAX_FLOW_BYTES}")])
    try:
        problem = _prescan(text)
        if problem is not None:
            return LoadedYaml(None, {}, [FlowError(file, problem[0], None, problem[1])])
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem_text = exc.problem or str(exc)
        return LoadedYaml(None, {}, [FlowError(file, line, None, f"YAML syntax error: {problem_text}")])
    except yaml.YAMLError as exc:
        return LoadedYaml(None, {}, [FlowError(file, 1, None, f"YAML error: {exc}")])
    except (RecursionError, MemoryError):  # whatever the prescan did not foresee
        return LoadedYaml(None, {}, [FlowError(file, 1, None, "YAML too complex to read")])
    if node is None:
        return LoadedYaml(None, {}, [FlowError(file, 1, None, "the file is empty")])
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except _TooLarge as exc:
        return LoadedYaml(None, {}, [FlowError(file, exc.line, None, str(exc))])
    except RecursionError:
        return LoadedYaml(None, {}, [FlowError(file, 1, None, "YAML too complex to read")])
    return LoadedYaml(data, builder.lines, builder.errors)
