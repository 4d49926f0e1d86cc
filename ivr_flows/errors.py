"""A problem in a flow file, located by file, line and step so an administrator can fix it without guessing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class FlowError:
    file: str
    line: int
    step: str | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        kind = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {self.step or '(flow)'}: {kind}{self.message}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class FlowInvalid(Exception):
    """A flow was refused; `errors` lists every problem (warnings included for context)."""

    def __init__(self, errors: list[FlowError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))
